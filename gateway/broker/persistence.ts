/**
 * Durable broker state: persistent sessions (subscriptions of clean=false clients and the QoS 1/2 messages queued for
 * them), retained messages, wills and the inbound QoS 2 state, kept by aedes-persistence-level in a sublevel of the
 * gateway's own LevelDB. That library writes without fsync; its writes here go through `synced`, so that what Aedes
 * acknowledges (a SUBACK, a retained message) survives a power cut as readings do.
 *
 * The inbound QoS 2 state (`incoming:` keys: a PUBLISH held between PUBREC and PUBREL) takes two writes per QoS 2
 * message; they go through a group commit (what arrives while one batch is written shares the next), synced unless
 * `syncInboundQos2` is off. Off, the state survives a process crash (the write is in the OS page cache) but not a
 * power cut. Readings the ingest deduplicated keep that state in memory instead (ingest-marks.ts says why nothing is
 * lost): only QoS 2 messages on other topics, and rejected ones, take the durable path.
 */
import { createRequire } from 'node:module';
import type { AedesOptions } from 'aedes';
import type { ClassicLevel } from 'classic-level';
import { GroupCommit } from '../shared/group-commit.js';
import { isDeduplicated } from './ingest-marks.js';

const require = createRequire(import.meta.url);
const aedesPersistenceLevel = require('aedes-persistence-level') as (
  db: unknown,
) => NonNullable<AedesOptions['persistence']>;

type Options = Record<string, unknown> | undefined;
type Db = ClassicLevel<string, Uint8Array>;
type Sublevel = ReturnType<Db['sublevel']>;

const withSync = (options: Options) => ({ ...(options ?? {}), sync: true });
const INBOUND_QOS2 = 'incoming:';
const needsSync = (key: unknown) => !(typeof key === 'string' && key.startsWith(INBOUND_QOS2));

type Op =
  | { type: 'put'; key: unknown; value: unknown; options?: Options }
  | { type: 'del'; key: unknown; options?: Options };

/**
 * A view of a sublevel whose writes are synchronous (fsync'd); the inbound QoS 2 state's puts and dels are grouped
 * through a group commit, synced as `syncInboundQos2` says.
 */
export function synced(sub: Sublevel, syncInboundQos2: boolean): Sublevel {
  const inbound = new GroupCommit<Op>({
    maxBatch: 1024,
    write: (ops, sync) =>
      sub.batch(
        ops.map((op) => ({
          type: op.type,
          key: op.key,
          ...(op.type === 'put' ? { value: op.value } : {}),
          ...(op.options?.valueEncoding ? { valueEncoding: op.options.valueEncoding } : {}),
        })) as never,
        { sync } as never,
      ),
    onFailure: () => undefined,
    onCommitted: () => undefined,
  });
  return new Proxy(sub, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      switch (prop) {
        case 'put':
          return (key: unknown, v: unknown, options?: Options) =>
            needsSync(key)
              ? fn.call(target, key, v, withSync(options))
              : inbound.enqueue({ type: 'put', key, value: v, options }, syncInboundQos2);
        case 'del':
          return (key: unknown, options?: Options) =>
            needsSync(key)
              ? fn.call(target, key, withSync(options))
              : inbound.enqueue({ type: 'del', key, options }, syncInboundQos2);
        case 'batch':
          return (ops?: unknown[], options?: Options) => {
            if (ops !== undefined) return fn.call(target, ops, withSync(options));
            const chained = fn.call(target) as { write(o?: Options): Promise<void> };
            const write = chained.write.bind(chained);
            chained.write = (o?: Options) => write(withSync(o));
            return chained;
          };
        default:
          return fn.bind(target);
      }
    },
  });
}

type Persistence = NonNullable<AedesOptions['persistence']>;
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
 * Keeps the inbound QoS 2 state of packets the ingest deduplicated in memory (see ingest-marks.ts for why that loses
 * nothing); every other packet's state goes to the durable store as before.
 */
function inboundInMemory(persistence: Persistence): Persistence {
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

/**
 * The Aedes persistence the gateway runs with; also what the conformance suite tests (its packets carry no ingest mark,
 * so all of them take the durable path).
 */
export function createBrokerPersistence(db: Db, syncInboundQos2 = true): Persistence {
  return inboundInMemory(
    aedesPersistenceLevel(
      synced(db.sublevel('broker', { keyEncoding: 'utf8', valueEncoding: 'buffer' }) as Sublevel, syncInboundQos2),
    ),
  );
}
