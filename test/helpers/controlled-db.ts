import { EventEmitter, once } from 'node:events';
import { ClassicLevel } from 'classic-level';
import type { Db } from '../../gateway/store/level-store.js';

/**
 * A real ClassicLevel whose batch writes can be held at a gate or made to fail once: fault injection by method swap,
 * as aedes's own tests do. Everything else is the real database.
 */
export interface ControlledDb {
  db: Db;
  /** Emits 'batch' (operation count) when a write reaches the database, before the gate. */
  events: EventEmitter;
  /** Holds every following write until the returned function is called. */
  hold(): () => void;
  /** Makes the next write fail with this error. */
  failNext(err: Error): void;
  nextBatch(): Promise<number>;
}

type BatchFn = (ops: unknown[], options: unknown) => Promise<void>;
type Chained = { length: number; write(options?: unknown): Promise<void>; close(): Promise<void> };

export function controlledDb(dir: string): ControlledDb {
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  const events = new EventEmitter();
  let gate: Promise<void> | null = null;
  let failure: Error | null = null;
  const intercept = async (length: number): Promise<void> => {
    events.emit('batch', length);
    if (gate) await gate;
    if (failure) {
      const err = failure;
      failure = null;
      throw err;
    }
  };
  const target = db as unknown as { _batch: BatchFn; batch: (...args: unknown[]) => unknown };
  const arrayBatch = target._batch.bind(db);
  target._batch = async (ops, options) => {
    await intercept(ops.length);
    return arrayBatch(ops, options);
  };
  const publicBatch = target.batch.bind(db);
  target.batch = (...args: unknown[]) => {
    if (args.length > 0) return publicBatch(...args);
    const chained = publicBatch() as Chained;
    const write = chained.write.bind(chained);
    chained.write = async (options) => {
      try {
        await intercept(chained.length);
      } catch (err) {
        await chained.close();
        throw err;
      }
      return write(options);
    };
    return chained;
  };
  return {
    db,
    events,
    hold() {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return () => {
        gate = null;
        release();
      };
    },
    failNext(err) {
      failure = err;
    },
    async nextBatch() {
      const [n] = (await once(events, 'batch')) as [number];
      return n;
    },
  };
}
