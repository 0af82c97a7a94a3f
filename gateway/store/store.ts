/** The durable store's interface and the records it holds. */
import type { DedupState } from '../telemetry/dedup.js';
import type { ForeignState } from '../telemetry/foreign.js';

export type Qos = 0 | 1 | 2;

export interface Counters {
  received: number;
  stored: number;
  duplicate: number;
  stale: number;
  /** Sequence numbers skipped and not (yet) filled; see README for how it is attributed to a QoS. */
  missing: number;
  late: number;
  rejected: number;
  /** Readings stored with the gateway's receive time because the device's clock was not plausible (clock.ts). */
  gatewayTime: number;
}

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
  code: string;
  reason: string;
  payload: Uint8Array;
}

/** One unit of work for the group commit: the result of one inbound message. */
export interface CommitEntry {
  /** Gateway-wide arrival sequence, unique and increasing in commit order. */
  gseq: number;
  /** The device's state after this message; undefined when the message named no valid device. */
  device?: DeviceRecord;
  reading?: StoredReading;
  /** Whether `reading` goes to the outbox (QoS 1/2 readings; QoS 0 is forwarded from memory). */
  outbox?: boolean;
  deadLetter?: DeadLetter;
}

export interface ReadingPage {
  items: StoredReading[];
  /** Opaque cursor for the next page, or null at the end. */
  next: string | null;
}

export interface ReadingQuery {
  fromTs?: number;
  toTs?: number;
  limit: number;
  cursor?: string;
}

/** Durable storage of readings, device state, outbox and dead letters. */
export interface TelemetryStore {
  /** All device records, as of the last successful write. */
  loadDevices(): Promise<DeviceRecord[]>;
  /** The highest gseq ever written (0 for a new store). */
  lastGseq(): Promise<number>;
  /** Writes all entries in one atomic batch; with `sync`, resolves only after the batch is on disk. */
  write(entries: readonly CommitEntry[], sync: boolean): Promise<void>;
  readings(deviceId: string, query: ReadingQuery): Promise<ReadingPage>;
  deadLetters(limit: number): Promise<DeadLetter[]>;
  close(): Promise<void>;
}

/** An outbox entry: a QoS 1/2 reading waiting to be forwarded upstream. */
export interface OutboxEntry {
  gseq: number;
  reading: StoredReading;
  /** Bytes it takes in the outbox, as counted against the backlog budget. */
  bytes: number;
}

/** The forwarder's persistent MQTT session: one record per upstream packet in flight. */
export interface SessionRecord {
  /** The outbox entries this packet carries (several when the backlog is sent in batches). */
  entries: { gseq: number; bytes: number }[];
  /** The MQTT packet as MQTT.js stored it (PUBLISH, then PUBREL once the broker sent PUBREC). */
  packet: Record<string, unknown>;
}

/** The outbox and the upstream session, written so that finishing a packet and removing its entries are one batch. */
export interface OutboxStore {
  /** Entries with gseq > after (and ≤ upTo), in gseq order. */
  outboxAfter(after: number, limit: number, upTo?: number): Promise<OutboxEntry[]>;
  outboxStats(): { readings: number; bytes: number };
  /** Receive time of the oldest entry, or null when the outbox is empty. */
  outboxOldestRx(): Promise<number | null>;
  /** Removes entries that went upstream at QoS 0 (no session state). */
  outboxDelete(entries: readonly { gseq: number; bytes: number }[]): Promise<void>;
  sessionLoad(): Promise<SessionRecord[]>;
  /**
   * One durable (fsync'd) batch of session changes: `put` records a packet before it is sent; `complete` forgets a
   * packet the broker acknowledged and removes the outbox entries it carried, atomically.
   */
  sessionWrite(changes: readonly SessionChange[]): Promise<void>;
}

export type SessionChange = { put: SessionRecord } | { complete: SessionRecord };
