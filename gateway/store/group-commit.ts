/**
 * Group commit (DESIGN.md "Storage"): while one batch is being written the next one collects; when the writer is
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

interface Pending<E> {
  entry: E;
  sync: boolean;
  resolve(): void;
  reject(err: unknown): void;
}

export class GroupCommit<E> {
  readonly #opts: GroupCommitOptions<E>;
  #queue: Pending<E>[] = [];
  #running: Promise<void> | null = null;

  constructor(opts: GroupCommitOptions<E>) {
    this.#opts = opts;
  }

  /** Resolves once the entry is written (and, with `sync`, on disk); rejects if its batch or an earlier one failed. */
  enqueue(entry: E, sync: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ entry, sync, resolve, reject });
      this.#running ??= this.#run();
    });
  }

  get pending(): number {
    return this.#queue.length;
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
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#opts.maxBatch);
        const sync = batch.some((p) => p.sync);
        const entries = batch.map((p) => p.entry);
        // performance.now(): write times are fractions of a millisecond, below Date.now()'s resolution.
        const started = performance.now();
        try {
          await this.#opts.write(entries, sync);
        } catch (err) {
          // Later entries were classified against state that never reached the disk: fail them too.
          const failed = batch.concat(this.#queue);
          this.#queue = [];
          this.#opts.onFailure(
            failed.map((p) => p.entry),
            err,
          );
          for (const p of failed) p.reject(err);
          return;
        }
        this.#opts.onCommitted(entries, { size: batch.length, sync, ms: performance.now() - started });
        for (const p of batch) p.resolve();
      }
    } finally {
      this.#running = null;
    }
  }
}
