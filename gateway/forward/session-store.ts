/**
 * A persistent outgoing store for MQTT.js: the upstream MQTT session survives a crash. MQTT.js writes a QoS 1/2
 * PUBLISH here before sending it, replaces it with the PUBREL when the broker answers PUBREC, and deletes it on
 * PUBACK/PUBCOMP; after a restart (clean=false, same client id) it reads this store and re-sends each packet — PUBLISH
 * with DUP, or PUBREL — as MQTT 3.1.1 §4.4 requires. So a QoS 2 reading is never published twice, whatever moment the
 * gateway is killed at. Deleting the packet and removing its outbox entries is one atomic write, so an entry can
 * never be forwarded again once the broker has acknowledged it. Do not replace this with MQTT.js's in-memory store
 * (MQTT.js #607, #2015).
 */
import { Readable } from 'node:stream';
import type { IStore, Packet } from 'mqtt';
import { GroupCommit } from '../shared/group-commit.js';
import type { OutboxStore, SessionChange, SessionRecord } from '../ingest/store-port.js';

type Callback = (error?: Error, packet?: Packet) => void;

/** Tells the store which outbox entries a PUBLISH carries; the forwarder registers each payload before publishing. */
export interface PayloadIndex {
  take(payload: unknown): SessionRecord['entries'] | undefined;
  /** Called once a packet is acknowledged and its entries are gone from the outbox. */
  completed(record: SessionRecord): void;
}

export class SessionStore implements IStore {
  readonly #db: OutboxStore;
  readonly #index: PayloadIndex;
  readonly #byMessageId = new Map<number, SessionRecord>();
  readonly #held = new Set<number>();
  /**
   * Writes are grouped, and settle in the order they were made: MQTT.js sends a packet when its put settles, so
   * this keeps the wire order equal to the publish order (and shares one fsync among many packets).
   */
  readonly #writes: GroupCommit<SessionChange>;

  private constructor(db: OutboxStore, index: PayloadIndex) {
    this.#db = db;
    this.#index = index;
    this.#writes = new GroupCommit<SessionChange>({
      maxBatch: 512,
      write: (changes) => this.#db.sessionWrite(changes),
      onFailure: () => undefined,
      onCommitted: () => undefined,
    });
  }

  static async open(db: OutboxStore, index: PayloadIndex): Promise<SessionStore> {
    const store = new SessionStore(db, index);
    for (const record of await db.sessionLoad()) store.#remember(record);
    return store;
  }

  /** Outbox entries held by packets in flight: the forwarder must not publish them again. */
  inFlightEntries(): number[] {
    return [...this.#held];
  }

  /** Whether the entry is in a packet the session holds (so MQTT.js, not the forwarder, will send it again). */
  holds(gseq: number): boolean {
    return this.#held.has(gseq);
  }

  #remember(record: SessionRecord): void {
    this.#byMessageId.set(record.packet.messageId as number, record);
    for (const e of record.entries) this.#held.add(e.gseq);
  }

  get size(): number {
    return this.#byMessageId.size;
  }

  put(packet: Packet, cb: (error?: Error) => void): this {
    const messageId = (packet as { messageId?: number }).messageId as number;
    const previous = this.#byMessageId.get(messageId);
    const entries =
      packet.cmd === 'publish' ? this.#index.take((packet as { payload: unknown }).payload) : previous?.entries;
    if (!entries) {
      cb(new Error(`no outbox entry known for ${packet.cmd} ${messageId}`));
      return this;
    }
    const record: SessionRecord = { entries, packet: { ...(packet as unknown as Record<string, unknown>) } };
    this.#writes.enqueue({ put: record }, true).then(
      () => {
        this.#remember(record);
        cb();
      },
      (err: Error) => cb(err),
    );
    return this;
  }

  get(packet: Pick<Packet, 'messageId'>, cb: Callback): this {
    const record = this.#byMessageId.get(packet.messageId as number);
    if (record) cb(undefined, record.packet as unknown as Packet);
    else cb(new Error('missing packet'));
    return this;
  }

  del(packet: Pick<Packet, 'messageId'>, cb: Callback): this {
    const record = this.#byMessageId.get(packet.messageId as number);
    if (!record) {
      cb(new Error('missing packet'));
      return this;
    }
    this.#writes.enqueue({ complete: record }, true).then(
      () => {
        this.#byMessageId.delete(packet.messageId as number);
        for (const e of record.entries) this.#held.delete(e.gseq);
        this.#index.completed(record);
        cb(undefined, record.packet as unknown as Packet);
      },
      (err: Error) => cb(err),
    );
    return this;
  }

  /** Packets in the order they were first published (their first outbox entry's order). */
  createStream(): ReturnType<IStore['createStream']> {
    const records = [...this.#byMessageId.values()].sort(
      (a, b) => (a.entries[0]?.gseq ?? 0) - (b.entries[0]?.gseq ?? 0),
    );
    // MQTT.js types this as readable-stream's Readable; it only reads objects, waits for 'readable' and 'end', and
    // destroys it, which node's Readable does the same way.
    return Readable.from(records.map((r) => r.packet)) as unknown as ReturnType<IStore['createStream']>;
  }

  close(cb: (error?: Error) => void): void {
    this.#writes.drain().then(() => cb(), cb);
  }

  /** Waits for session writes under way. */
  drain(): Promise<void> {
    return this.#writes.drain();
  }
}
