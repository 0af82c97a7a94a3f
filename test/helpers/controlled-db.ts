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

export function controlledDb(dir: string): ControlledDb {
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  const events = new EventEmitter();
  let gate: Promise<void> | null = null;
  let failure: Error | null = null;
  const target = db as unknown as { _batch: BatchFn };
  const original = target._batch.bind(db);
  target._batch = async (ops, options) => {
    events.emit('batch', ops.length);
    if (gate) await gate;
    if (failure) {
      const err = failure;
      failure = null;
      throw err;
    }
    return original(ops, options);
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
