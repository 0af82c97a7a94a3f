/** The store as ingest, forward and the API see it: an atomic commit, the outbox, the upstream session, queries. */
import type { DeadLetter, DeviceRecord, StoredReading } from '../domain/model.js';
import type { BatchInfo, Lane } from '../shared/group-commit.js';

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

export interface LoadedDevices {
  records: DeviceRecord[];
  unreadable: number;
}

export interface CommitHooks<E> {
  onCommitted(entries: readonly E[], info: BatchInfo): void;
  onFailure(entries: readonly E[], err: unknown): void;
}

/** Durable storage of readings, device state, outbox and dead letters. */
export interface TelemetryStore {
  /**
   * All device records, as of the last successful write, and how many could not be decoded (after damage): those
   * devices start with fresh dedup state.
   */
  loadDevices(): Promise<LoadedDevices>;
  /** The highest gseq ever written (0 for a new store). */
  lastGseq(): Promise<number>;
  /**
   * A lane of the store's group commit: entries enqueued with `sync` settle only once their batch is on disk; a batch
   * is atomic. The hooks run before the entries' promises settle.
   */
  commitLane<E extends CommitEntry>(hooks: CommitHooks<E>): Lane<E>;
  readings(deviceId: string, query: ReadingQuery): Promise<ReadingPage>;
  deadLetters(limit: number): Promise<DeadLetter[]>;
  /** Deletes the oldest dead letters beyond the newest `keep`; resolves with how many it deleted. */
  pruneDeadLetters(keep: number): Promise<number>;
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
  /**
   * The MQTT packet as MQTT.js stored it (PUBLISH, then PUBREL once the broker sent PUBREC). On disk a PUBLISH has
   * no payload: it is made again from the outbox entries it carries (forwarder.ts), which saves most of a packet's
   * bytes written per reading. Records written before that have theirs.
   */
  packet: Record<string, unknown>;
  /** The payload marks its readings as sent from the backlog. */
  hist?: boolean;
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
   * One durable (fsync'd) session change, in a shared batch: `put` records a packet before it is sent; `complete`
   * forgets a packet the broker acknowledged and removes the outbox entries it carried, atomically. Changes settle
   * in the order they were made.
   */
  sessionWrite(change: SessionChange): Promise<void>;
}

/** `stored: false`: the packet was held in memory only (QoS 1), so there is no session record to delete. */
export type SessionChange = { put: SessionRecord } | { complete: SessionRecord; stored: boolean };
