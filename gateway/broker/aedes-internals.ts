/**
 * Every place the gateway reaches into Aedes and aedes-persistence-level beyond their public API, in one file.
 * Checked against aedes 1.2.0 (aedes.js `publish`, `emitPacket`, `counter`, `mq`, `persistence`; lib/client.js
 * `nextBatch` and `dedupe`; lib/handlers/publish.js), mqemitter 7.1 and aedes-persistence-level 9.2 (its `incoming:`
 * keys and the put/del/batch calls it makes on the level it is given). A new major of any of them means reading those
 * again; the tests that fail when they change: test/integration/local-subscribers.test.ts,
 * test/integration/repeats.test.ts, test/integration/security.test.ts, test/process/qos2-handshake-crash.test.ts,
 * test/process/wills-after-crash.test.ts and the persistence conformance suite (test/conformance).
 */
import type { Aedes, AedesOptions, AedesPublishPacket } from 'aedes';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ChainedBatch, ClassicLevel } from 'classic-level';
import type { Verdict } from '../ingest/place.js';
import type { Committer } from '../shared/group-commit.js';
import { EmitOrder } from './emit-order.js';

/* ---- 1. The ingest's verdict, on the packet ----
 *
 * Aedes hands the one packet object from authorizePublish to the inbound QoS 2 store and to routing, so the verdict
 * rides on it. A reading the ingest placed (stored, or a duplicate of a stored one) is deduplicated durably and
 * before the ack. That makes two pieces of Aedes's per-message work redundant for it:
 * - routing a repeat (a duplicate of a stored reading) to local subscribers, who already had the first copy: it is
 *   skipped, so subscribers see each reading once even at QoS 1 and across a gateway crash;
 * - a durable inbound QoS 2 state (the PUBLISH held between PUBREC and PUBREL, two synced writes per message): it is
 *   kept in memory. After a crash a re-sent PUBLISH is a repeat (not stored, not routed) and a re-sent PUBREL gets its
 *   PUBCOMP either way, so what the devices and subscribers see is the same.
 * Rejected and refused messages, and readings the dedup could not place (stale, an unconfirmed jump: kept in the dead
 * letters), keep the durable path.
 */

// A symbol-keyed property rather than a WeakMap: a WeakMap entry per message leaves an ephemeron per packet for the
// garbage collector (docs/benchmarks.md has the cost).
const VERDICT = Symbol('sensorgate.verdict');
type Marked = { [VERDICT]?: Verdict };

export function markVerdict(packet: object, verdict: Verdict): void {
  (packet as Marked)[VERDICT] = verdict;
}

/** The ingest placed the reading: stored now, or a duplicate of one stored (by sequence, or content for foreign). */
export function isDeduplicated(packet: object): boolean {
  const v = (packet as Marked)[VERDICT];
  return v === 'new' || v === 'late' || v === 'duplicate';
}

/** A duplicate of a reading already stored. */
export function isRepeat(packet: object): boolean {
  return (packet as Marked)[VERDICT] === 'duplicate';
}

/* ---- 2. Routing to local subscribers ----
 *
 * a. A repeat of a stored reading is not routed again: its ack is already sent or, at QoS 2, follows, and
 *    subscribers had the first copy.
 * b. Routed packets reach the subscribers in the order Aedes numbered them. Aedes gives every packet a counter
 *    (`brokerCounter`) when `publish` starts, and each client drops a packet whose counter is not above the highest it
 *    has delivered from that broker (`dedupe`, meant for a reconnecting session whose queue and live traffic overlap).
 *    Between numbering and `mq.emit` a QoS 1/2 packet waits for its copy in every persistent session's queue to be
 *    written (an fsync'd put each), and a retained one for the retained store; those writes complete in any order,
 *    and a QoS 0 packet does not wait at all. A packet that overtook an older one made every subscriber drop the older
 *    one: acked, stored, and never delivered. So an emit waits until every packet numbered before it was emitted or
 *    its publish ended (EmitOrder).
 */

type Done = (err?: Error | null) => void;
type Publish = (packet: object, client: unknown, done?: Done) => void;
type Routed = { brokerId?: string | null; brokerCounter?: number };
type Emit = (packet: Routed, cb?: Done) => unknown;
interface RoutingInternals {
  publish: Publish;
  counter: number;
  mq: { emit: Emit };
}

/** Installs both steps on a broker that has not yet accepted a connection. */
export function orderRouting(aedes: Aedes): void {
  const internal = aedes as unknown as RoutingInternals;
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

/* ---- 3. The broker's persistence ----
 *
 * aedes-persistence-level writes without fsync; its writes go through `synced`, so that what Aedes acknowledges (a
 * SUBACK, a retained message, a message queued for a persistent session) survives a power cut as readings do. They go
 * into the store's shared batches (shared/group-commit.ts), in the order they were made: one fsync covers them and the
 * readings committed with them. The inbound QoS 2 state (`incoming:` keys, two writes per QoS 2 message) is synced
 * unless `syncInboundQos2` is off (then it survives a process crash but not a power cut), and for deduplicated
 * readings it is kept in memory (section 1).
 */

type Options = Record<string, unknown> | undefined;
export type Db = ClassicLevel<string, Uint8Array>;
export type Sublevel = ReturnType<Db['sublevel']>;
export type Batch = ChainedBatch<Db, string, Uint8Array>;

const INBOUND_QOS2 = 'incoming:';

type Op =
  | { type: 'put'; key: unknown; value: unknown; options?: Options }
  | { type: 'del'; key: unknown; options?: Options };

/** A view of a sublevel whose puts, dels and batches are written, in order, by the committer's shared batches. */
export function synced(sub: Sublevel, committer: Committer<Batch>, syncInboundQos2: boolean): Sublevel {
  const lane = committer.lane<Op>({
    stage(batch, ops) {
      for (const op of ops) {
        const encoding = op.options?.valueEncoding ? { valueEncoding: op.options.valueEncoding } : {};
        if (op.type === 'put')
          batch.put(op.key as string, op.value as Uint8Array, { sublevel: sub, ...encoding } as never);
        else batch.del(op.key as string, { sublevel: sub } as never);
      }
    },
    onFailure: () => undefined,
    onCommitted: () => undefined,
  });
  const write = (op: Op) =>
    lane.enqueue(op, !(typeof op.key === 'string' && op.key.startsWith(INBOUND_QOS2)) || syncInboundQos2);
  /** The ops of one batch call go in one shared batch (enqueued together), so the last one's promise covers all. */
  const writeAll = (ops: readonly Op[]) => ops.reduce<Promise<void>>((_, op) => write(op), Promise.resolve());
  return new Proxy(sub, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      switch (prop) {
        case 'put':
          return (key: unknown, v: unknown, options?: Options) => write({ type: 'put', key, value: v, options });
        case 'del':
          return (key: unknown, options?: Options) => write({ type: 'del', key, options });
        case 'batch':
          return (ops?: Op[], options?: Options) => {
            const withOptions = (op: Op): Op => ({ ...op, options: { ...options, ...op.options } });
            if (ops !== undefined) return writeAll(ops.map(withOptions));
            const chained: Op[] = [];
            const batch = {
              put(key: unknown, v: unknown, o?: Options) {
                chained.push({ type: 'put', key, value: v, options: o });
                return batch;
              },
              del(key: unknown, o?: Options) {
                chained.push({ type: 'del', key, options: o });
                return batch;
              },
              write: () => writeAll(chained),
            };
            return batch;
          };
        default:
          return fn.bind(target);
      }
    },
  });
}

export type Persistence = NonNullable<AedesOptions['persistence']>;
type Cb = (err: Error | null, packet?: unknown) => void;
type Client = { id: string };
type Inbound = { messageId?: number };
type IncomingMethods = {
  incomingStorePacket(client: Client, packet: Inbound, cb?: Cb): Promise<void> | undefined;
  incomingGetPacket(client: Client, packet: Inbound, cb?: Cb): Promise<unknown> | undefined;
  incomingDelPacket(client: Client, packet: Inbound, cb?: Cb): Promise<void> | undefined;
  cleanIncoming(client: Client, cb?: Cb): Promise<void> | undefined;
};

/** Aedes calls these with promises; the conformance suite with callbacks. */
function settle<T>(work: () => T, cb: Cb | undefined): Promise<T> | undefined {
  const result = new Promise<T>((resolve) => resolve(work()));
  if (!cb) return result;
  result.then(
    (value) => cb(null, value),
    (err: Error) => cb(err),
  );
  return undefined;
}

/**
 * Keeps the inbound QoS 2 state of packets the ingest deduplicated in memory (section 1 says why that
 * loses nothing); every other packet's state goes to the durable store as before.
 */
export function inboundInMemory(persistence: Persistence): Persistence {
  const durable = persistence as unknown as IncomingMethods;
  const store = {
    get: durable.incomingGetPacket,
    put: durable.incomingStorePacket,
    del: durable.incomingDelPacket,
    clean: durable.cleanIncoming,
  };
  const held = new Map<string, Map<number, Inbound>>();
  const methods: IncomingMethods = {
    incomingStorePacket(client, packet, cb) {
      if (!isDeduplicated(packet)) return store.put.call(persistence, client, packet, cb);
      return settle(() => {
        const byId = held.get(client.id) ?? new Map<number, Inbound>();
        held.set(client.id, byId);
        byId.set(packet.messageId as number, packet);
      }, cb);
    },
    incomingGetPacket(client, packet, cb) {
      const found = held.get(client.id)?.get(packet.messageId as number);
      if (found) return settle(() => found, cb);
      // A deduplicated PUBLISH needs no look on disk (a disk read per QoS 2 reading): any copy held there could only
      // make Aedes skip routing a repeat, which routing skips anyway. A PUBREL is not marked and looks in both.
      if (isDeduplicated(packet)) {
        return settle(() => {
          throw new Error('no such packet');
        }, cb);
      }
      return store.get.call(persistence, client, packet, cb);
    },
    incomingDelPacket(client, packet, cb) {
      const byId = held.get(client.id);
      if (!byId?.delete(packet.messageId as number)) return store.del.call(persistence, client, packet, cb);
      if (byId.size === 0) held.delete(client.id);
      return settle(() => undefined, cb);
    },
    cleanIncoming(client, cb) {
      held.delete(client.id);
      return store.clean.call(persistence, client, cb);
    },
  };
  return Object.assign(persistence, methods);
}

/* ---- 4. Wills ---- */

export type Will = AedesPublishPacket & { clientId: string; brokerId: string };
export interface WillStore {
  streamWill(brokers: Record<string, number>): AsyncIterable<Will>;
  delWill(client: { id: string; brokerId: string }): Promise<unknown>;
}

/** The wills Aedes keeps in its persistence (it has no public API to list them). */
export function willStore(aedes: Aedes): WillStore {
  return (aedes as unknown as { persistence: WillStore }).persistence;
}

/* ---- 5. How Aedes reads and writes a connection ---- */

/**
 * Aedes 1.2 reads a connection in paused mode, `conn.read(null)` on each 'readable' once the previous batch is handled
 * (lib/client.js `nextBatch`), and hands every chunk to its mqtt-packet parser, which buffers a packet's whole body.
 * Each chunk it reads passes `check` first; when that says stop, the socket is destroyed and Aedes sees no data. The
 * socket itself is what Aedes gets (a wrapping stream changed how it detected closed connections under faults), so
 * this wraps the socket's `read`. Guarded by test/integration/security.test.ts (a declared 256 MiB packet).
 */
export function checkReads(socket: Socket, check: (chunk: Buffer) => boolean): Socket {
  const read = socket.read.bind(socket);
  socket.read = (size?: number) => {
    const chunk = read(size) as Buffer | null;
    if (chunk === null || check(chunk)) return chunk;
    socket.destroy();
    return null;
  };
  return socket;
}

/**
 * Aedes 1.2 writes every packet with `conn.write` (mqtt-packet's writeToStream) and, with `concurrency: 0`, does not
 * wait for a slow client before routing the next message: a subscriber that stops reading makes Node buffer without
 * bound (measured: 1 GB of RSS in 6 s with one paused `#` subscriber at QoS 1, while publishers were still acked).
 * After each write, a stream whose unsent bytes (`buffered`) exceed `limit` is destroyed; Aedes then closes the
 * client and fails its pending deliveries. Guarded by test/integration/security.test.ts (a subscriber that stops
 * reading).
 */
export function checkWrites<S extends Duplex>(stream: S, buffered: () => number, limit: number, over: () => void): S {
  type Write = (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean;
  const write = stream.write.bind(stream) as Write;
  // Fixed arguments, no rest array: this runs for every packet written to every client.
  (stream as { write: Write }).write = (chunk, encoding, cb) => {
    const ok = write(chunk, encoding, cb);
    if (buffered() > limit && !stream.destroyed) {
      over();
      stream.destroy();
    }
    return ok;
  };
  return stream;
}

/* ---- 6. Queues of offline sessions ---- */

type QueueMethods = {
  outgoingEnqueueCombi(subs: { clientId: string }[], packet: unknown): Promise<unknown>;
};

/**
 * Aedes 1.2 queues a QoS 1/2 message for every persistent session that subscribed to it with one
 * `persistence.outgoingEnqueueCombi(subs, packet)` (aedes.js, after routing), connected or not. A session that is not
 * connected gets at most `limit` messages queued; beyond that its new messages are dropped and reported, as Mosquitto's
 * max_queued_messages does. The count is kept in memory from the client's disconnect (or the gateway's start) until it
 * connects again and its queue drains, so after a restart a session may hold up to `limit` more than it had. (Counting
 * what was on disk first, through `outgoingStream`, made the 200-session probe of bench/probes.ts run out of a 160 MB
 * heap.) Guarded by test/integration/security.test.ts (an offline session over its limit).
 */
export function limitOfflineQueues(aedes: Aedes, limit: number, dropped: (clientId: string) => void): void {
  const persistence = (aedes as unknown as { persistence: QueueMethods }).persistence;
  const clients = (aedes as unknown as { clients: Record<string, unknown> }).clients;
  const enqueue = persistence.outgoingEnqueueCombi.bind(persistence);
  const counts = new Map<string, number>();
  aedes.on('client', (client) => counts.delete(client.id));
  persistence.outgoingEnqueueCombi = (subs, packet) => {
    const kept = subs.filter((sub) => {
      if (clients[sub.clientId]) return true;
      const n = counts.get(sub.clientId) ?? 0;
      if (n >= limit) {
        dropped(sub.clientId);
        return false;
      }
      counts.set(sub.clientId, n + 1);
      return true;
    });
    return enqueue(kept, packet);
  };
}

/* ---- 7. Removing an offline session ----
 *
 * Aedes has no API to forget a persistent session that never comes back. aedes-persistence-level 9.2 keeps, per client
 * id (encodeURIComponent'd, then ':'), its subscriptions under `subscriptions:`, the messages queued for it under
 * `outgoing:` and `outgoing-id:`, and its inbound QoS 2 state under `incoming:`. Subscriptions go through the public
 * `cleanSubscriptions` (it also updates the in-memory trie); the rest are key ranges. Guarded by
 * test/integration/security.test.ts (an expired session).
 */

const SESSION_PREFIXES = ['outgoing:', 'outgoing-id:', 'incoming:'];

/** The client ids that have subscriptions stored: every persistent session, connected or not. */
export async function* storedSessions(sub: Sublevel): AsyncIterable<string> {
  let last: string | null = null;
  for await (const key of sub.keys({ gte: 'subscriptions:', lt: 'subscriptions;' })) {
    const encoded = (key as string).slice('subscriptions:'.length).split(':')[0] ?? '';
    const id = decodeURIComponent(encoded);
    if (id !== last) yield id;
    last = id;
  }
}

/** Forgets one session: its subscriptions, its queued messages and its inbound QoS 2 state. */
export async function removeSession(persistence: Persistence, sub: Sublevel, clientId: string): Promise<void> {
  await (persistence as unknown as { cleanSubscriptions(c: Client): Promise<void> }).cleanSubscriptions({
    id: clientId,
  });
  const encoded = `${encodeURIComponent(clientId)}:`;
  for (const prefix of SESSION_PREFIXES) {
    const start = `${prefix}${encoded}`;
    await sub.clear({ gte: start, lt: `${start}\uffff` });
  }
}
