/** The reading and device model: what a device sent, what the gateway keeps about each device. */
import type { DedupState } from './dedup.js';
import type { DeadLetterCode } from './errors.js';
import type { ForeignState } from './foreign.js';

export type Qos = 0 | 1 | 2;

/**
 * What is counted per device and QoS, in the order the API and the metrics list them. `missing` counts sequence numbers
 * skipped and not (yet) filled (README says how it is attributed to a QoS); `gatewayTime` counts readings stored with
 * the gateway's receive time because the device's clock was not plausible (clock.ts). Every other counter counts
 * messages, and each message adds to `received` and to at most two others (a late reading is also stored).
 */
export const COUNTER_NAMES = [
  'received',
  'stored',
  'duplicate',
  'stale',
  'missing',
  'late',
  'rejected',
  'gatewayTime',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
export type Counters = Record<CounterName, number>;
/** The counters a message adds to (every one but `missing`, which is a level that goes up and down). */
export type Outcome = Exclude<CounterName, 'missing'>;

export function zeroCounters(): Counters {
  return { received: 0, stored: 0, duplicate: 0, stale: 0, missing: 0, late: 0, rejected: 0, gatewayTime: 0 };
}

/** Per-device state persisted with every batch that touches the device. Treated as immutable once built. */
export interface DeviceRecord {
  readonly id: string;
  readonly dedup: DedupState | null;
  readonly foreign: ForeignState | null;
  /** Gateway time (ms) of the last message from the device. */
  readonly lastSeen: number;
  /** Indexed by QoS. */
  readonly counters: readonly [Counters, Counters, Counters];
  /** Times the device's counter went back and it started over (dedup.ts `reset`). */
  readonly bootResets: number;
}

/** A reading as stored and as returned by the API. */
export interface StoredReading {
  deviceId: string;
  boot: number;
  seq: number;
  /** Device clock, ms since the Unix epoch. */
  ts: number;
  /** Gateway receive time, ms since the Unix epoch. */
  rx: number;
  qos: Qos;
  m: Record<string, number>;
  /** Set for foreign readings, whose seq the gateway assigned. */
  foreign?: true;
  /** Set when `ts` is the gateway's receive time, the device's clock not being plausible. */
  tsSource?: 'gateway';
}

export interface DeadLetter {
  rx: number;
  topic: string;
  clientId: string | null;
  deviceId: string | null;
  qos: Qos;
  code: DeadLetterCode;
  reason: string;
  /** What was kept of the payload: its first `deadLetters.maxPayloadBytes` bytes. */
  payload: Uint8Array;
  /** The size of the payload as received. */
  payloadBytes: number;
}
