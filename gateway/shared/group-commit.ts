/**
 * Group commit (docs/architecture.md, "Group commit"): every durable write of the process — readings, the upstream
 * session, the broker's state — goes through one committer, in lanes (one per writer). While one batch is written the
 * next one collects from every lane; when the writer is idle a batch goes at once (on the next tick, so the messages
 * Aedes hands over from one socket read share it). So one fsync covers what all writers had waiting, and forwarding or
 * a persistent session adds no fsync of its own.
 *
 * With a commit interval, a synced batch starts no sooner than that long after the previous synced one: entries wait
 * at most the interval for a shared fsync (an SD card sees at most 1000/interval of them a second) and still settle
 * only once it is done.
 *
 * Batches are written strictly one after another, so a lane's entries settle in the order they were enqueued: a
 * device's acks go out in the order it sent.
 */

export interface BatchInfo {
  /** Entries of this lane in the batch. */
  size: number;
  sync: boolean;
  /** Wall time of the write, ms. */
  ms: number;
}

/** One write of the committer, whatever lanes it carried. */
export interface WriteInfo {
  entries: number;
  sync: boolean;
  ms: number;
}

export interface LaneOptions<B, E> {
  /** Adds the entries' operations to the shared batch; synchronous, so a batch is never seen half built. */
  stage(batch: B, entries: readonly E[]): void;
  /** Synchronous, before any promise settles: lets the owner roll its in-memory state back to the durable state. */
  onFailure(entries: readonly E[], err: unknown): void;
  onCommitted(entries: readonly E[], info: BatchInfo): void;
}

export interface CommitterOptions<B> {
  newBatch(): B;
  write(batch: B, sync: boolean): Promise<void>;
  /** A synced batch starts at least this long after the previous synced one started; 0: as soon as it can. */
  intervalMs: number;
}

/** A lane's entries of the batch being collected. They share one promise: no promise per entry. */
interface Pending<E> {
  entries: E[];
  sync: boolean;
  done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function newPending<E>(): Pending<E> {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A failed batch is reported through onFailure; a caller that does not await its entry must not crash the process.
  done.catch(() => undefined);
  return { entries: [], sync: false, done, resolve, reject };
}

export class Lane<E> {
  readonly #committer: Committer<never>;
  readonly #opts: LaneOptions<never, E>;
  #pending: Pending<E> = newPending<E>();

  /** @internal Lanes are made by Committer.lane. */
  constructor(committer: Committer<never>, opts: LaneOptions<never, E>) {
    this.#committer = committer;
    this.#opts = opts;
  }

  /**
   * Resolves once the entry is written (and, with `sync`, on disk); rejects if its batch or an earlier one failed.
   * Entries of one batch get the same promise, so callbacks attached in enqueue order run in that order.
   */
  enqueue(entry: E, sync: boolean): Promise<void> {
    const p = this.#pending;
    p.entries.push(entry);
    if (sync) p.sync = true;
    this.#committer.kick();
    return p.done;
  }

  /** Entries not yet handed to the writer. */
  get pending(): number {
    return this.#pending.entries.length;
  }

  /** Resolves when everything enqueued so far has settled. */
  drain(): Promise<void> {
    return this.#committer.drain();
  }

  /** @internal */
  get wantsSync(): boolean {
    return this.#pending.sync;
  }

  /** @internal Fails what is pending, without a write (the database is gone). */
  fail(err: unknown): void {
    const p = this.#pending;
    if (p.entries.length === 0) return;
    this.#pending = newPending<E>();
    this.#opts.onFailure(p.entries, err);
    p.reject(err);
  }

  /** @internal Takes what is pending and stages it; null when nothing is. */
  take(batch: never): Taken | null {
    const p = this.#pending;
    if (p.entries.length === 0) return null;
    this.#pending = newPending<E>();
    const taken: Taken = {
      committed: (info) => {
        this.#opts.onCommitted(p.entries, { ...info, size: p.entries.length });
        p.resolve();
      },
      failed: (err) => {
        // Later entries were placed against state that never reached the disk: they fail with this batch.
        const later = this.#pending;
        this.#pending = newPending<E>();
        this.#opts.onFailure([...p.entries, ...later.entries], err);
        p.reject(err);
        later.reject(err);
      },
      size: p.entries.length,
    };
    try {
      this.#opts.stage(batch, p.entries);
    } catch (err) {
      taken.failed(err);
      throw err;
    }
    return taken;
  }
}

interface Taken {
  committed(info: BatchInfo): void;
  failed(err: unknown): void;
  size: number;
}

export class Committer<B> {
  readonly #opts: CommitterOptions<B>;
  readonly #lanes: Lane<unknown>[] = [];
  readonly #watchers: ((info: WriteInfo) => void)[] = [];
  #running: Promise<void> | null = null;
  #lastSync = -Infinity;

  constructor(opts: CommitterOptions<B>) {
    this.#opts = opts;
  }

  lane<E>(opts: LaneOptions<B, E>): Lane<E> {
    const lane = new Lane<E>(this as unknown as Committer<never>, opts as unknown as LaneOptions<never, E>);
    this.#lanes.push(lane as Lane<unknown>);
    return lane;
  }

  /** Called after every write, for metrics: how many entries, synced or not, how long. */
  watch(watcher: (info: WriteInfo) => void): void {
    this.#watchers.push(watcher);
  }

  /** Resolves when everything enqueued so far has settled. */
  async drain(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** @internal A lane has entries: write them unless a write is already on its way. */
  kick(): void {
    this.#running ??= this.#run();
  }

  async #run(): Promise<void> {
    // Let the rest of this synchronous run enqueue too: Aedes hands every publish parsed from one socket read to
    // authorizePublish in one go, so they share the batch without waiting a whole event-loop turn.
    await new Promise<void>((resolve) => process.nextTick(resolve));
    try {
      while (this.#lanes.some((l) => l.pending > 0)) {
        if (this.#lanes.some((l) => l.wantsSync)) {
          const wait = this.#lastSync + this.#opts.intervalMs - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        }
        await this.#writeOne();
      }
    } finally {
      this.#running = null;
    }
  }

  async #writeOne(): Promise<void> {
    const sync = this.#lanes.some((l) => l.wantsSync);
    let batch: B;
    try {
      batch = this.#opts.newBatch();
    } catch (err) {
      // A write after the store closed (a late one from a part shutting down): it fails like a failed write.
      for (const lane of this.#lanes) lane.fail(err);
      return;
    }
    const taken: Taken[] = [];
    // performance.now(): write times are fractions of a millisecond, below Date.now()'s resolution.
    const started = performance.now();
    try {
      for (const lane of this.#lanes) {
        const t = lane.take(batch as never);
        if (t) taken.push(t);
      }
      if (sync) this.#lastSync = started;
      await this.#opts.write(batch, sync);
    } catch (err) {
      // A lane whose stage threw has already failed its own entries.
      for (const t of taken) t.failed(err);
      return;
    }
    const ms = performance.now() - started;
    const entries = taken.reduce((n, t) => n + t.size, 0);
    for (const w of this.#watchers) w({ entries, sync, ms });
    for (const t of taken) t.committed({ size: t.size, sync, ms });
  }
}
