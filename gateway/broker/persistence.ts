/**
 * Durable broker state: persistent sessions (subscriptions of clean=false clients and the QoS 1/2 messages queued for
 * them), retained messages, wills and the inbound QoS 2 state, kept by aedes-persistence-level in a sublevel of the
 * gateway's own LevelDB. That library writes without fsync; every write it makes here goes through `synced`, so that
 * what Aedes acknowledges (a SUBACK, a retained message, a PUBREC) survives a power cut as readings do.
 */
import { createRequire } from 'node:module';
import type { AedesOptions } from 'aedes';
import type { Db } from '../store/level-store.js';

const require = createRequire(import.meta.url);
const aedesPersistenceLevel = require('aedes-persistence-level') as (db: unknown) => NonNullable<AedesOptions['persistence']>;

type Options = Record<string, unknown> | undefined;
type Sublevel = ReturnType<Db['sublevel']>;

const withSync = (options: Options) => ({ ...(options ?? {}), sync: true });

/** A view of a sublevel whose every write is synchronous (fsync'd). */
export function synced(sub: Sublevel): Sublevel {
  return new Proxy(sub, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      switch (prop) {
        case 'put':
          return (key: unknown, v: unknown, options?: Options) => fn.call(target, key, v, withSync(options));
        case 'del':
          return (key: unknown, options?: Options) => fn.call(target, key, withSync(options));
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
export function createBrokerPersistence(db: Db): NonNullable<AedesOptions['persistence']> {
  return aedesPersistenceLevel(synced(db.sublevel('broker', { keyEncoding: 'utf8', valueEncoding: 'buffer' }) as Sublevel));
}
