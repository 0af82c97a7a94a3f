/**
 * A persistent outgoing store for MQTT.js: the upstream MQTT session survives a crash. MQTT.js writes a QoS 1/2
 * PUBLISH here before sending it, replaces it with the PUBREL when the broker answers PUBREC, and deletes it on
 * PUBACK/PUBCOMP; after a restart (clean=false, same client id) it reads this store and re-sends each packet — PUBLISH
 * with DUP, or PUBREL — as MQTT 3.1.1 §4.4 requires. So a QoS 2 reading is never published twice, whatever moment the
 * gateway is killed at. Deleting the packet and removing its outbox entries is one atomic write, so an entry can
 * never be forwarded again once the broker has acknowledged it. Do not replace this with MQTT.js's in-memory store
 * (MQTT.js #607, #2015).
 *
 * A QoS 1 PUBLISH is kept in memory only: QoS 1 allows a second delivery, and after a crash its entries, still in the
 * outbox, are simply published again with their `mid` (the consumer's idempotency key). Writing it would cost about
 * 60 bytes per reading on the SD card (docs/operations.md) and buy nothing. Its completion still removes its outbox
 * entries in a shared batch.
 */
import { Readable } from 'node:stream';
import type { IStore, Packet } from 'mqtt';
import type { OutboxStore, SessionChange, SessionRecord } from '../ingest/store-port.js';

type Callback = (error?: Error, packet?: Packet) => void;

/** Tells the store which outbox entries a PUBLISH carries; the forwarder registers each payload before publishing. */
export interface PayloadIndex {
  take(payload: unknown): Pick<SessionRecord, 'entries' | 'hist'> | undefined;
  /** Called once a packet is acknowledged and its entries are gone from the outbox. */
  completed(record: SessionRecord): void;
}

export class SessionStore implements IStore {
  readonly #db: OutboxStore;
  readonly #index: PayloadIndex;
  readonly #byMessageId = new Map<number, SessionRecord>();
  readonly #held = new Set<number>();
  /** Message ids of packets held in memory only (QoS 1 PUBLISH): their completion has no record to delete. */
  readonly #memoryOnly = new Set<number>();
  /**
   * Writes go into the store's shared batches and settle in the order they were made: MQTT.js sends a packet when its
   * put settles, so this keeps the wire order equal to the publish order (and shares one fsync among many packets).
   * The last write made; drain() waits for it.
   */
  #lastWrite: Promise<unknown> = Promise.resolve();

  private constructor(db: OutboxStore, index: PayloadIndex) {
    this.#db = db;
    this.#index = index;
  }

  #write(change: SessionChange): Promise<void> {
    const done = this.#db.sessionWrite(change);
    this.#lastWrite = done.catch(() => undefined);
    return done;
  }

  /**
   * `payloadOf` makes a stored PUBLISH's payload again from the outbox entries it carries (null: they are gone, which
   * an atomic completion rules out; the record is then dropped, and its entries are published again as new).
   */
  static async open(
    db: OutboxStore,
    index: PayloadIndex,
    payloadOf: (record: SessionRecord) => Promise<Buffer | null>,
  ): Promise<{ store: SessionStore; unrestorable: number }> {
    const store = new SessionStore(db, index);
    let unrestorable = 0;
    for (const record of await db.sessionLoad()) {
      if (record.packet.cmd === 'publish' && record.packet.payload === undefined) {
        const payload = await payloadOf(record);
        if (payload === null) {
          unrestorable++;
          continue;
        }
        record.packet.payload = payload;
      }
      store.#remember(record);
    }
    return { store, unrestorable };
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
    const carried = packet.cmd === 'publish' ? this.#index.take((packet as { payload: unknown }).payload) : previous;
    if (!carried) {
      cb(new Error(`no outbox entry known for ${packet.cmd} ${messageId}`));
      return this;
    }
    const { payload, ...rest } = packet as unknown as Record<string, unknown>;
    const record: SessionRecord = {
      entries: carried.entries,
      packet: payload === undefined ? rest : { ...rest, payload },
      ...(carried.hist ? { hist: true } : {}),
    };
    const memoryOnly = packet.cmd === 'publish' && (packet as { qos?: number }).qos === 1;
    // Settling after the writes before it keeps the wire order equal to the publish order.
    const written = memoryOnly ? this.#lastWrite : this.#write({ put: { ...record, packet: rest } });
    written.then(
      () => {
        this.#remember(record);
        if (memoryOnly) this.#memoryOnly.add(messageId);
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
    const stored = !this.#memoryOnly.has(packet.messageId as number);
    this.#write({ complete: record, stored }).then(
      () => {
        this.#byMessageId.delete(packet.messageId as number);
        this.#memoryOnly.delete(packet.messageId as number);
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
    this.#lastWrite.then(() => cb(), cb);
  }

  /** Waits for session writes under way. */
  async drain(): Promise<void> {
    await this.#lastWrite;
  }
}
