/**
 * Durable broker state: persistent sessions (subscriptions of clean=false clients and the QoS 1/2 messages queued for
 * them), retained messages, wills and the inbound QoS 2 state, kept by aedes-persistence-level in a sublevel of the
 * gateway's own LevelDB. That library writes without fsync; its writes here go through `synced`, so that what Aedes
 * acknowledges (a SUBACK, a retained message) survives a power cut as readings do.
 *
 * The inbound QoS 2 state (`incoming:` keys: a PUBLISH held between PUBREC and PUBREL) takes two writes per QoS 2
 * message; they go through a group commit (what arrives while one batch is written shares the next), synced unless
 * `syncInboundQos2` is off. Off, the state survives a process crash (the write is in the OS page cache) but not a
 * power cut; after one, a re-sent telemetry PUBLISH is still stored once (sequence dedup) and only local subscribers
 * of the topic could see it twice.
 */
import { createRequire } from 'node:module';
import type { AedesOptions } from 'aedes';
import { GroupCommit } from '../store/group-commit.js';
import type { Db } from '../store/level-store.js';

const require = createRequire(import.meta.url);
const aedesPersistenceLevel = require('aedes-persistence-level') as (db: unknown) => NonNullable<AedesOptions['persistence']>;

type Options = Record<string, unknown> | undefined;
type Sublevel = ReturnType<Db['sublevel']>;

const withSync = (options: Options) => ({ ...(options ?? {}), sync: true });
const INBOUND_QOS2 = 'incoming:';
const needsSync = (key: unknown) => !(typeof key === 'string' && key.startsWith(INBOUND_QOS2));

type Op = { type: 'put'; key: unknown; value: unknown; options?: Options } | { type: 'del'; key: unknown; options?: Options };

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
            needsSync(key) ? fn.call(target, key, v, withSync(options)) : inbound.enqueue({ type: 'put', key, value: v, options }, syncInboundQos2);
        case 'del':
          return (key: unknown, options?: Options) =>
            needsSync(key) ? fn.call(target, key, withSync(options)) : inbound.enqueue({ type: 'del', key, options }, syncInboundQos2);
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

/** The Aedes persistence the gateway runs with; also what the conformance suite tests. */
export function createBrokerPersistence(db: Db, syncInboundQos2 = true): NonNullable<AedesOptions['persistence']> {
  return aedesPersistenceLevel(synced(db.sublevel('broker', { keyEncoding: 'utf8', valueEncoding: 'buffer' }) as Sublevel, syncInboundQos2));
}
