/**
 * Group commit (docs/architecture.md, "Group commit"): while one batch is being written the next one collects; when the writer is
 * idle a batch goes at once (on the next tick, so the messages Aedes hands over from one socket read share it). At low
 * load one entry costs one write; under load the fsync is shared by the whole batch.
 *
 * Batches are written strictly one after another, so entries settle in the order they were enqueued: a device's acks
 * go out in the order it sent.
 */

export interface BatchInfo {
  size: number;
  sync: boolean;
  /** Wall time of the write, ms. */
  ms: number;
}

export interface GroupCommitOptions<E> {
  write(entries: readonly E[], sync: boolean): Promise<void>;
  maxBatch: number;
  /** Synchronous, before any promise settles: lets the owner roll its in-memory state back to the durable state. */
  onFailure(entries: readonly E[], err: unknown): void;
  onCommitted(entries: readonly E[], info: BatchInfo): void;
}

/** A batch being collected or waiting for the writer. Its entries share one promise: no promise per entry. */
interface Batch<E> {
  entries: E[];
  sync: boolean;
  done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function newBatch<E>(): Batch<E> {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { entries: [], sync: false, done, resolve, reject };
}

export class GroupCommit<E> {
  readonly #opts: GroupCommitOptions<E>;
  /** Not yet handed to the writer, oldest first; only the last one still takes entries. */
  #batches: Batch<E>[] = [];
  #pending = 0;
  #running: Promise<void> | null = null;

  constructor(opts: GroupCommitOptions<E>) {
    this.#opts = opts;
  }

  /**
   * Resolves once the entry is written (and, with `sync`, on disk); rejects if its batch or an earlier one failed.
   * Entries of one batch get the same promise, so callbacks attached in enqueue order run in that order.
   */
  enqueue(entry: E, sync: boolean): Promise<void> {
    let batch = this.#batches.at(-1);
    if (batch === undefined || batch.entries.length >= this.#opts.maxBatch) {
      batch = newBatch<E>();
      this.#batches.push(batch);
    }
    batch.entries.push(entry);
    if (sync) batch.sync = true;
    this.#pending++;
    this.#running ??= this.#run();
    return batch.done;
  }

  /** Entries not yet handed to the writer. */
  get pending(): number {
    return this.#pending;
  }

  /** Resolves when everything enqueued so far has settled. */
  async drain(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #run(): Promise<void> {
    // Let the rest of this synchronous run enqueue too: Aedes hands every publish parsed from one socket read to
    // authorizePublish in one go, so they share the batch without waiting a whole event-loop turn.
    await new Promise<void>((resolve) => process.nextTick(resolve));
    try {
      for (let batch = this.#batches.shift(); batch !== undefined; batch = this.#batches.shift()) {
        this.#pending -= batch.entries.length;
        // performance.now(): write times are fractions of a millisecond, below Date.now()'s resolution.
        const started = performance.now();
        try {
          await this.#opts.write(batch.entries, batch.sync);
        } catch (err) {
          // Later entries were classified against state that never reached the disk: fail them too.
          const failed = [batch, ...this.#batches];
          this.#batches = [];
          this.#pending = 0;
          this.#opts.onFailure(
            failed.flatMap((b) => b.entries),
            err,
          );
          for (const b of failed) b.reject(err);
          return;
        }
        this.#opts.onCommitted(batch.entries, {
          size: batch.entries.length,
          sync: batch.sync,
          ms: performance.now() - started,
        });
        batch.resolve();
      }
    } finally {
      this.#running = null;
    }
  }
}
