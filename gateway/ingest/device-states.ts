/**
 * Per-device records in two versions: `durable` as of the last successful batch, and `pending`, which includes every
 * message queued for commit and is what the next message is classified against. A failed batch rolls its devices back
 * to their durable records. Records are immutable, so keeping the durable one costs nothing.
 */
import { COUNTER_NAMES, type Counters, type DeviceRecord, zeroCounters } from '../domain/model.js';

/** Counters of rejected messages that named no valid device live under this id, which no device id can take. */
export const UNATTRIBUTED = '$unattributed';

export type QosCounters = readonly [Counters, Counters, Counters];

export function emptyRecord(id: string): DeviceRecord {
  return {
    id,
    dedup: null,
    foreign: null,
    lastSeen: 0,
    counters: [zeroCounters(), zeroCounters(), zeroCounters()],
    bootResets: 0,
  };
}

export class DeviceStates {
  readonly #durable = new Map<string, DeviceRecord>();
  readonly #pending = new Map<string, DeviceRecord>();

  constructor(records: Iterable<DeviceRecord>) {
    for (const record of records) {
      this.#durable.set(record.id, record);
      this.#pending.set(record.id, record);
    }
  }

  /** The record the next message of `id` is classified against. */
  current(id: string): DeviceRecord {
    return this.#pending.get(id) ?? emptyRecord(id);
  }

  /** A message queued for commit changed the device. */
  stage(record: DeviceRecord): void {
    this.#pending.set(record.id, record);
  }

  /** The batch holding this record is durable. */
  settle(record: DeviceRecord): void {
    this.#durable.set(record.id, record);
  }

  /** The batch that changed these devices failed: back to what is durable. */
  rollback(ids: Iterable<string>): void {
    for (const id of ids) {
      const before = this.#durable.get(id);
      if (before) this.#pending.set(id, before);
      else this.#pending.delete(id);
    }
  }

  /** Device records as of the last successful write, without the unattributed counters. */
  devices(): DeviceRecord[] {
    return [...this.#durable.values()].filter((d) => d.id !== UNATTRIBUTED);
  }

  /** Per-QoS totals over every durable record, the unattributed one included. */
  totals(): [Counters, Counters, Counters] {
    const totals: [Counters, Counters, Counters] = [zeroCounters(), zeroCounters(), zeroCounters()];
    for (const d of this.#durable.values()) {
      for (const qos of [0, 1, 2] as const) {
        for (const name of COUNTER_NAMES) totals[qos][name] += d.counters[qos][name];
      }
    }
    return totals;
  }
}
