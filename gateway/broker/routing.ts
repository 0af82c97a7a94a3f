/**
 * How PUBLISHes reach local subscribers: the two places where the gateway steps into Aedes's routing. Checked against
 * Aedes 1.2.0 (aedes.js `publish`, `emitPacket`; lib/client.js `dedupe`) with mqemitter 7.1.
 *
 * 1. A repeat of a stored reading is not routed again (ingest-marks.ts): its ack is already sent or, at QoS 2,
 *    follows, and subscribers had the first copy.
 * 2. Routed packets reach the subscribers in the order Aedes numbered them. Aedes gives every packet a counter
 *    (`brokerCounter`) when `publish` starts, and each client drops a packet whose counter is not above the highest it
 *    has delivered from that broker (`dedupe`, meant for a reconnecting session whose queue and live traffic overlap).
 *    Between numbering and `mq.emit` a QoS 1/2 packet waits for its copy in every persistent session's queue to be
 *    written (an fsync'd put each), and a retained one for the retained store; those writes complete in any order,
 *    and a QoS 0 packet does not wait at all. A packet that overtook an older one made every subscriber drop the older
 *    one: acked, stored, and never delivered (about one in five at 20 in flight with a persistent subscriber online).
 *    So an emit waits here until every packet numbered before it was emitted or its publish ended.
 */
import type { Aedes } from 'aedes';
import { isRepeat } from './ingest-marks.js';

type Done = (err?: Error | null) => void;
type Publish = (packet: object, client: unknown, done?: Done) => void;
type Routed = { brokerId?: string | null; brokerCounter?: number };
type Emit = (packet: Routed, cb?: Done) => unknown;
interface Internals {
  publish: Publish;
  counter: number;
  mq: { emit: Emit };
}

/**
 * Publishes still under way, by the counter Aedes gave them, and the emits held back behind them. Counters are
 * registered in increasing order, so the first one in the set is the lowest.
 */
export class EmitOrder {
  readonly #underway = new Set<number>();
  #held: { counter: number; emit: () => void }[] = [];

  /** A publish numbered `counter` started. */
  begin(counter: number): void {
    this.#underway.add(counter);
  }

  /** Emits now or once every publish numbered before `counter` is out of the way. */
  emit(counter: number, emit: () => void): void {
    if (!this.#underway.has(counter)) {
      emit();
      return;
    }
    if (this.#lowest() === counter) {
      this.#underway.delete(counter);
      emit();
      this.#release();
      return;
    }
    const at = this.#held.findIndex((h) => h.counter > counter);
    if (at < 0) this.#held.push({ counter, emit });
    else this.#held.splice(at, 0, { counter, emit });
  }

  /** The publish numbered `counter` ended, emitted or not (a failed queue or retained write ends it unemitted). */
  end(counter: number): void {
    if (this.#underway.delete(counter)) this.#release();
  }

  /** Publishes under way and emits held back, for tests. */
  get size(): { underway: number; held: number } {
    return { underway: this.#underway.size, held: this.#held.length };
  }

  #lowest(): number | undefined {
    for (const counter of this.#underway) return counter;
    return undefined;
  }

  #release(): void {
    while (this.#held.length > 0) {
      const next = this.#held[0] as { counter: number; emit: () => void };
      if (this.#lowest() !== next.counter) return;
      this.#held.shift();
      this.#underway.delete(next.counter);
      next.emit();
    }
  }
}

/** Installs both steps on a broker that has not yet accepted a connection. */
export function orderRouting(aedes: Aedes): void {
  const internal = aedes as unknown as Internals;
  const order = new EmitOrder();
  const route = internal.publish.bind(aedes);
  // Aedes calls publish(packet, client, done) internally; its typings only show the (packet, done) form.
  internal.publish = (packet, client, done) => {
    const cb = typeof client === 'function' ? (client as Done) : done;
    if (isRepeat(packet)) {
      cb?.(null);
      return;
    }
    // Aedes numbers a packet that has no counter yet as the first step of publish, synchronously.
    const counter = (packet as Routed).brokerCounter ? undefined : internal.counter + 1;
    if (counter !== undefined) order.begin(counter);
    route(packet, typeof client === 'function' ? null : client, (err) => {
      if (counter !== undefined) order.end(counter);
      cb?.(err);
    });
    // A publish refused before numbering (too many topic levels) took no counter.
    if (counter !== undefined && internal.counter < counter) order.end(counter);
  };
  const emit = internal.mq.emit.bind(internal.mq);
  internal.mq.emit = (packet, cb) => {
    if (packet.brokerId !== aedes.id || packet.brokerCounter === undefined) return emit(packet, cb);
    order.emit(packet.brokerCounter, () => emit(packet, cb));
    return internal.mq;
  };
}
