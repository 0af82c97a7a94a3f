/**
 * What is handed to MQTT.js and not yet acknowledged, and the correlation MQTT.js lacks: its outgoing store sees only
 * the packet, so each QoS 1/2 payload is registered here with the outbox entries it carries, for the session store to
 * take when MQTT.js stores the packet (session-store.ts).
 */
import type { SessionRecord } from '../ingest/store-port.js';

export type EntryRef = SessionRecord['entries'][number];

function payloadKey(payload: unknown): string {
  return Buffer.isBuffer(payload) ? payload.toString('latin1') : String(payload);
}

/** What a QoS 1/2 payload carries: its outbox entries, and whether they went as backlog. */
export interface Carried {
  entries: EntryRef[];
  hist: boolean;
}

export class InFlight {
  readonly #byPayload = new Map<string, Carried>();
  /** Outbox entries in a packet MQTT.js has or the session holds: never published again by the forwarder. */
  readonly #entries = new Set<number>();
  #packets = 0;
  #idle: (() => void) | undefined;

  /** Entries of packets restored from the previous run's session, which MQTT.js sends again itself. */
  restore(gseqs: Iterable<number>): void {
    for (const g of gseqs) this.#entries.add(g);
  }

  has(gseq: number): boolean {
    return this.#entries.has(gseq);
  }

  get entries(): number {
    return this.#entries.size;
  }

  /** Packets handed to MQTT.js whose callback has not run. */
  get packets(): number {
    return this.#packets;
  }

  /** A packet carrying `refs` is about to be published with `payload`. */
  publish(payload: unknown, qos: number, refs: EntryRef[], hist: boolean): void {
    for (const e of refs) this.#entries.add(e.gseq);
    if (qos > 0) this.#byPayload.set(payloadKey(payload), { entries: refs, hist });
    this.#packets++;
  }

  /** For the session store: the entries of the packet MQTT.js is storing (once). */
  take(payload: unknown): Carried | undefined {
    const key = payloadKey(payload);
    const refs = this.#byPayload.get(key);
    this.#byPayload.delete(key);
    return refs;
  }

  /** MQTT.js called back for a packet. */
  settled(): void {
    this.#packets--;
    if (this.#packets === 0) this.#idle?.();
  }

  /** The packet was never stored nor sent: its entries may be published again. */
  unsent(payload: unknown, refs: readonly EntryRef[]): void {
    this.#byPayload.delete(payloadKey(payload));
    this.forget(refs);
  }

  /** The entries are acknowledged and gone from the outbox. */
  forget(refs: readonly EntryRef[]): void {
    for (const e of refs) this.#entries.delete(e.gseq);
  }

  /** Resolves when no packet is in flight, or after `ms`, or when `abort` resolves (the link went down). */
  async idle(ms: number, abort: Promise<unknown>): Promise<void> {
    if (this.#packets === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => {
        this.#idle = resolve;
        timer = setTimeout(resolve, ms);
      }),
      abort,
    ]);
    clearTimeout(timer);
  }
}
