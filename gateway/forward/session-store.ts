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
import type { OutboxStore, SessionRecord } from '../store/store.js';

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

  private constructor(db: OutboxStore, index: PayloadIndex) {
    this.#db = db;
    this.#index = index;
  }

  static async open(db: OutboxStore, index: PayloadIndex): Promise<SessionStore> {
    const store = new SessionStore(db, index);
    for (const record of await db.sessionLoad()) store.#byMessageId.set(record.packet.messageId as number, record);
    return store;
  }

  /** Outbox entries held by packets in flight: the forwarder must not publish them again. */
  inFlightEntries(): number[] {
    return [...this.#byMessageId.values()].flatMap((r) => r.entries.map((e) => e.gseq));
  }

  get size(): number {
    return this.#byMessageId.size;
  }

  put(packet: Packet, cb: (error?: Error) => void): this {
    const messageId = (packet as { messageId?: number }).messageId as number;
    const previous = this.#byMessageId.get(messageId);
    const entries = packet.cmd === 'publish' ? this.#index.take((packet as { payload: unknown }).payload) : previous?.entries;
    if (!entries) {
      cb(new Error(`no outbox entry known for ${packet.cmd} ${messageId}`));
      return this;
    }
    const record: SessionRecord = { entries, packet: { ...(packet as unknown as Record<string, unknown>) } };
    this.#db.sessionPut(record).then(
      () => {
        this.#byMessageId.set(messageId, record);
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
    this.#db.sessionComplete(record).then(
      () => {
        this.#byMessageId.delete(packet.messageId as number);
        this.#index.completed(record);
        cb(undefined, record.packet as unknown as Packet);
      },
      (err: Error) => cb(err),
    );
    return this;
  }

  /** Packets in the order they were first published (their first outbox entry's order). */
  createStream(): ReturnType<IStore['createStream']> {
    const records = [...this.#byMessageId.values()].sort((a, b) => (a.entries[0]?.gseq ?? 0) - (b.entries[0]?.gseq ?? 0));
    // MQTT.js types this as readable-stream's Readable; it only reads objects, waits for 'readable' and 'end', and
    // destroys it, which node's Readable does the same way.
    return Readable.from(records.map((r) => r.packet)) as unknown as ReturnType<IStore['createStream']>;
  }

  close(cb: (error?: Error) => void): void {
    cb();
  }
}
