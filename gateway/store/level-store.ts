/** TelemetryStore over LevelDB (classic-level): one atomic batch per commit, across sublevels. */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type ChainedBatch, ClassicLevel } from 'classic-level';
import { GatewayError } from '../domain/errors.js';
import { Committer, type Lane, type LaneOptions } from '../shared/group-commit.js';
import type { Logger } from '../shared/log.js';
import { deviceRange, readingKey, seqKey, tsOfReadingKey } from './keys.js';
import { isDamage, repairStore, type RepairReport } from './repair.js';
import {
  decodeDeadLetter,
  decodeDevice,
  decodeOutboxValue,
  decodeReadingValue,
  decodeValue,
  encodeDevice,
  encodeOutboxRef,
  encodeValue,
  type OutboxValue,
} from './records.js';
import type { DeadLetter, DeviceRecord, StoredReading } from '../domain/model.js';
import type {
  CommitEntry,
  LoadedDevices,
  OutboxEntry,
  OutboxStore,
  ReadingPage,
  ReadingQuery,
  SessionChange,
  SessionRecord,
  TelemetryStore,
} from '../ingest/store-port.js';

export type Db = ClassicLevel<string, Uint8Array>;
/** The one batch every durable write of a commit goes into (readings, upstream session, broker state). */
export type Batch = ChainedBatch<Db, string, Uint8Array>;

export const VERIFY_MODES = ['unclean', 'always', 'never'] as const;
export type VerifyMode = (typeof VERIFY_MODES)[number];

export interface OpenOptions {
  /** Lets tests pass a ClassicLevel subclass that slows down or fails writes. */
  createDb?: (dir: string) => Db;
  /** When to read every record once at open, to find (and repair) damage now rather than later. */
  verify?: VerifyMode;
  /** Verification progress goes here. */
  log?: Logger;
  /** store.commitIntervalMs: synced batches start at most this often. */
  commitIntervalMs?: number;
}

/** What open() found: a damaged database it repaired, with what it moved aside (null when none was needed). */
export interface StoreFound {
  repaired: RepairReport | null;
  /** The previous run did not close the store (a crash, a power cut, SIGKILL). */
  unclean: boolean;
}

/** Set while the store is open, removed by a clean close: its presence at open means the last run did not close. */
const RUNNING_KEY = '!meta!running';
type Sub = ReturnType<Db['sublevel']> & { batch: unknown };

const SCHEMA_VERSION = 1;

function encodeCursor(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  return Buffer.from(cursor, 'base64url').toString('utf8');
}

export class LevelStore implements TelemetryStore, OutboxStore {
  readonly #db: Db;
  readonly #readings;
  readonly #devices;
  readonly #outbox;
  readonly #deadletter;
  readonly #meta;
  readonly #sessions;
  #outboxReadings = 0;
  #deadLetterCount = 0;
  #outboxBytes = 0;
  #danglingRemoved = 0;
  readonly #log: Logger | undefined;
  #closing: Promise<void> | undefined;
  /** Every durable write of the process goes through it (shared/group-commit.ts). */
  readonly committer: Committer<Batch>;
  readonly #session: Lane<SessionChange>;
  readonly #outboxDone: Lane<{ gseq: number; bytes: number }>;
  /** What a staged batch of commit entries adds to the counters, applied once it is written. */
  readonly #staged = new WeakMap<
    readonly CommitEntry[],
    { outboxReadings: number; outboxBytes: number; deadLetters: number }
  >();

  /** The database itself, for the one other owner of a sublevel in it: the broker's persistence. */
  get db(): Db {
    return this.#db;
  }

  readonly #dir: string;

  private constructor(db: Db, dir: string, commitIntervalMs: number, log: Logger | undefined) {
    this.#db = db;
    this.#log = log;
    this.#dir = dir;
    this.committer = new Committer<Batch>({
      newBatch: () => db.batch(),
      write: async (batch, sync) => {
        if (db.status !== 'open') throw new GatewayError('GW_STORE_NOT_OPEN', 'the store is not open');
        try {
          await batch.write({ sync });
        } catch (err) {
          throw new GatewayError(
            'GW_STORE_WRITE_FAILED',
            `batch of ${batch.length} failed: ${(err as Error).message}`,
            {
              cause: err,
            },
          );
        }
      },
      intervalMs: commitIntervalMs,
    });
    const sub = (name: string) => db.sublevel<string, Uint8Array>(name, { keyEncoding: 'utf8', valueEncoding: 'view' });
    this.#readings = sub('readings');
    this.#devices = sub('devices');
    this.#outbox = sub('outbox');
    this.#deadletter = sub('deadletter');
    this.#meta = sub('meta');
    this.#sessions = sub('upstream-session');
    this.#session = this.committer.lane<SessionChange>({
      stage: (batch, changes) => this.#stageSession(batch, changes),
      onCommitted: (changes) => {
        for (const change of changes) if ('complete' in change) this.#forgetOutbox(change.complete.entries);
      },
      onFailure: () => undefined,
    });
    this.#outboxDone = this.committer.lane<{ gseq: number; bytes: number }>({
      stage: (batch, entries) => {
        for (const e of entries) batch.del(this.#outbox.prefix + seqKey(e.gseq));
      },
      onCommitted: (entries) => this.#forgetOutbox(entries),
      onFailure: () => undefined,
    });
  }

  /**
   * Opens (creating if needed) the database at `dataDir`. `createDb` lets tests pass a ClassicLevel subclass that
   * slows down or fails writes.
   */
  static async open(dataDir: string, opts: OpenOptions = {}): Promise<{ store: LevelStore; found: StoreFound }> {
    const { createDb = defaultDb, verify = 'unclean', commitIntervalMs = 0, log } = opts;
    let db = createDb(dataDir);
    let repaired: RepairReport | null = null;
    let unclean = false;
    try {
      await db.open();
      unclean = (await db.get(RUNNING_KEY)) !== undefined;
      // LevelDB finds a damaged table block only when it reads it; read everything once, so that damage is found
      // (and repaired) now, not when a query or the forwarder trips over it. After a clean close there is nothing a
      // crash could have left half written, so by default only an unclean shutdown pays for the scan.
      if (verify === 'always' || (verify === 'unclean' && unclean)) await verifyAll(db, unclean, log);
    } catch (err) {
      if (db.status === 'open') await db.close();
      if (!isDamage(err)) {
        throw new GatewayError(
          'GW_STORE_OPEN_FAILED',
          `cannot open the store at ${dataDir}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      const reason = ((err as { cause?: Error }).cause ?? (err as Error)).message;
      try {
        repaired = await repairStore(dataDir, reason);
        db = createDb(dataDir);
        await db.open();
      } catch (repairErr) {
        throw new GatewayError(
          'GW_STORE_OPEN_FAILED',
          `the store at ${dataDir} is damaged (${reason}) and repair failed`,
          {
            cause: repairErr,
          },
        );
      }
    }
    const store = new LevelStore(db, dataDir, commitIntervalMs, log);
    const version = await store.#meta.get('schema');
    if (version === undefined) {
      await db.batch(
        [{ type: 'put', sublevel: store.#meta as Sub, key: 'schema', value: encodeValue(SCHEMA_VERSION) }] as never,
        {
          sync: true,
        },
      );
    } else if (decodeValue(version) !== SCHEMA_VERSION) {
      await db.close();
      throw new GatewayError('GW_STORE_OPEN_FAILED', `store at ${dataDir} has an unsupported schema version`);
    }
    await db.put(RUNNING_KEY, encodeValue(Date.now()), { sync: true } as never);
    for await (const _ of store.#deadletter.keys()) store.#deadLetterCount++;
    for await (const [key, value] of store.#outbox.iterator()) {
      store.#outboxReadings++;
      store.#outboxBytes += outboxEntryBytes(key, value, decodeOutboxValue(value));
    }
    return { store, found: { repaired, unclean } };
  }

  async loadDevices(): Promise<LoadedDevices> {
    const records: DeviceRecord[] = [];
    let unreadable = 0;
    for await (const value of this.#devices.values()) {
      try {
        records.push(decodeDevice(value));
      } catch {
        unreadable++;
      }
    }
    return { records, unreadable };
  }

  async lastGseq(): Promise<number> {
    const value = await this.#meta.get('gseq');
    return value === undefined ? 0 : (decodeValue(value) as number);
  }

  /** Counts this start of the gateway (durably) and returns the count: 1 for a new store. */
  async countStart(): Promise<number> {
    const value = await this.#meta.get('starts');
    const starts = (value === undefined ? 0 : (decodeValue(value) as number)) + 1;
    await this.#meta.put('starts', encodeValue(starts), { sync: true } as never);
    return starts;
  }

  /** A lane of the shared commit for the ingest's entries: each batch of them is atomic with whatever shares it. */
  commitLane<E extends CommitEntry>(hooks: Omit<LaneOptions<Batch, E>, 'stage'>): Lane<E> {
    return this.committer.lane<E>({
      stage: (batch, entries) => this.#stageCommit(batch, entries),
      onCommitted: (entries, info) => {
        const counts = this.#staged.get(entries);
        if (counts) {
          this.#outboxReadings += counts.outboxReadings;
          this.#outboxBytes += counts.outboxBytes;
          this.#deadLetterCount += counts.deadLetters;
        }
        hooks.onCommitted(entries, info);
      },
      onFailure: hooks.onFailure,
    });
  }

  #stageCommit(batch: Batch, entries: readonly CommitEntry[]): void {
    // The sublevels' prefixes applied here (the same bytes the sublevels write): far cheaper than abstract-level's
    // array batch for hundreds of entries, and no per-put sublevel work (docs/benchmarks.md, "Changes").
    const devices = new Map<string, DeviceRecord>();
    const counts = { outboxReadings: 0, outboxBytes: 0, deadLetters: 0 };
    let maxGseq = -1;
    for (const e of entries) {
      maxGseq = Math.max(maxGseq, e.gseq);
      if (e.device) devices.set(e.device.id, e.device);
      if (e.reading) {
        const value = encodeValue(e.reading);
        const rkey = readingKey(e.reading.deviceId, e.reading.ts, e.gseq);
        batch.put(this.#readings.prefix + rkey, value);
        if (e.outbox) {
          const key = seqKey(e.gseq);
          const ref = encodeOutboxRef(e.reading.deviceId, e.reading.ts, value.byteLength);
          batch.put(this.#outbox.prefix + key, ref);
          counts.outboxReadings++;
          counts.outboxBytes += key.length + ref.byteLength + value.byteLength;
        }
      }
      if (e.deadLetter) {
        batch.put(this.#deadletter.prefix + seqKey(e.gseq), encodeValue(e.deadLetter));
        counts.deadLetters++;
      }
    }
    for (const [id, record] of devices) batch.put(this.#devices.prefix + id, encodeDevice(record));
    if (maxGseq >= 0) batch.put(`${this.#meta.prefix}gseq`, encodeValue(maxGseq));
    this.#staged.set(entries, counts);
  }

  async readings(deviceId: string, query: ReadingQuery): Promise<ReadingPage> {
    const range = deviceRange(deviceId, query.fromTs, query.toTs);
    const gt = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const options = gt !== undefined && gt >= range.gte ? { gt, lt: range.lt } : range;
    const entries = await this.#readings.iterator({ ...options, limit: query.limit + 1 }).all();
    const page = entries.slice(0, query.limit);
    const last = page.at(-1);
    return {
      items: page.map(([, v]) => decodeReadingValue(v)),
      next: entries.length > query.limit && last ? encodeCursor(last[0]) : null,
    };
  }

  /** Device time of the device's oldest reading kept, or null when none is. */
  oldestTs(deviceId: string): Promise<number | null> {
    return this.#edgeTs(deviceId, false);
  }

  /** Device time of the device's newest reading kept, or null when none is. */
  newestTs(deviceId: string): Promise<number | null> {
    return this.#edgeTs(deviceId, true);
  }

  async #edgeTs(deviceId: string, reverse: boolean): Promise<number | null> {
    const [key] = await this.#readings.keys({ ...deviceRange(deviceId), reverse, limit: 1 }).all();
    return key === undefined ? null : tsOfReadingKey(key);
  }

  /**
   * Every reading with a device time from `fromTs` to `toTs`, device by device (in id order) and in time order within
   * a device: one iterator at a time, read in pages, so memory stays constant whatever the range.
   */
  async *readingsBetween(fromTs: number, toTs: number): AsyncIterable<StoredReading> {
    for (const id of await this.deviceIds()) yield* this.deviceReadings(id, fromTs, toTs);
  }

  /** The device's readings with a device time from `fromTs` to `toTs`, in time order, from one iterator. */
  async *deviceReadings(deviceId: string, fromTs: number, toTs: number): AsyncIterable<StoredReading> {
    // classic-level's iterators read ahead in chunks, and for-await closes them on an early exit.
    for await (const v of this.#readings.values(deviceRange(deviceId, fromTs, toTs))) yield decodeReadingValue(v);
  }

  /** The device's newest `n` readings, newest first. */
  async recentReadings(deviceId: string, n: number): Promise<StoredReading[]> {
    const values = await this.#readings.values({ ...deviceRange(deviceId), reverse: true, limit: n }).all();
    return values.map(decodeReadingValue);
  }

  /**
   * Every record of the database as one consistent snapshot (a LevelDB iterator reads the state of the moment it was
   * made), for a backup while the gateway runs; the mark of a running store is left out, so a restored copy opens as
   * a cleanly closed one.
   */
  async *snapshot(): AsyncIterable<[string, Uint8Array]> {
    for await (const entry of this.#db.iterator()) if (entry[0] !== RUNNING_KEY) yield entry;
  }

  /** Ids of every device with a record. */
  async deviceIds(): Promise<string[]> {
    return this.#devices.keys().all();
  }

  /**
   * Deletes the device's readings with a device time before `cutoffTs`, in batches (not synced: deleting is no promise
   * to keep anything); resolves with how many. Their outbox copies stay until forwarded.
   */
  async deleteReadingsBefore(deviceId: string, cutoffTs: number): Promise<number> {
    const range = { gte: deviceRange(deviceId).gte, lt: deviceRange(deviceId, 0, cutoffTs - 1).lt, limit: 1000 };
    let deleted = 0;
    for (;;) {
      const keys = await this.#readings.keys(range).all();
      if (keys.length === 0) return deleted;
      await this.#readings.batch(keys.map((key) => ({ type: 'del' as const, key })));
      deleted += keys.length;
    }
  }

  /** Rewrites the readings' table files without what was deleted, so that the space returns to the filesystem. */
  async compactReadings(): Promise<void> {
    await this.#db.compactRange(this.#readings.prefix, `${this.#readings.prefix.slice(0, -1)}"`);
  }

  /** Bytes of the database's files (tables, logs, manifest), as `du` would count them. */
  async bytesOnDisk(): Promise<number> {
    let total = 0;
    for (const name of await readdir(this.#dir)) {
      // A compaction may delete a file between the listing and its stat.
      if (name !== 'lost') total += (await stat(join(this.#dir, name)).catch(() => ({ size: 0 }))).size;
    }
    return total;
  }

  async pruneDeadLetters(keep: number): Promise<number> {
    const excess = this.#deadLetterCount - keep;
    if (excess <= 0) return 0;
    // Keys are arrival sequences, so the first ones are the oldest. Not synced: forgetting is no promise to keep.
    const oldest = await this.#deadletter.keys({ limit: excess }).all();
    await this.#deadletter.batch(oldest.map((key) => ({ type: 'del' as const, key })));
    this.#deadLetterCount -= oldest.length;
    return oldest.length;
  }

  async deadLetters(limit: number): Promise<DeadLetter[]> {
    const values = await this.#deadletter.values({ reverse: true, limit }).all();
    return values.map(decodeDeadLetter);
  }

  async outboxAfter(after: number, limit: number, upTo?: number): Promise<OutboxEntry[]> {
    const range = upTo === undefined ? { gt: seqKey(after) } : { gt: seqKey(after), lte: seqKey(upTo) };
    const rows = (await this.#outbox.iterator({ ...range, limit }).all()).map(([key, bytes]) => {
      const gseq = parseInt(key, 16);
      const value = decodeOutboxValue(bytes);
      return { gseq, value, bytes: outboxEntryBytes(key, bytes, value) };
    });
    // An entry that names its reading: the reading's key is its device and time, and the entry's arrival sequence.
    const named = rows.flatMap(({ gseq, value }) =>
      'deviceId' in value ? [{ gseq, key: readingKey(value.deviceId, value.ts, gseq) }] : [],
    );
    const found = named.length === 0 ? [] : await this.#readings.getMany(named.map((n) => n.key));
    const readings = new Map(named.map((n, i) => [n.gseq, found[i]]));
    const entries: OutboxEntry[] = [];
    const dangling: { gseq: number; bytes: number }[] = [];
    for (const { gseq, value, bytes } of rows) {
      const stored = readings.get(gseq);
      if ('reading' in value) entries.push({ gseq, reading: value.reading, bytes });
      else if (stored !== undefined) entries.push({ gseq, reading: decodeReadingValue(stored), bytes });
      else dangling.push({ gseq, bytes });
    }
    if (dangling.length > 0) {
      // Retention holds back readings the outbox names (outboxHolds), so only damage outside the gateway gets here;
      // such an entry can never be forwarded, and would stall its lane for ever.
      this.#log?.error({ entries: dangling.length }, 'outbox entries whose reading is gone: removed');
      this.#danglingRemoved += dangling.length;
      await this.outboxDelete(dangling);
    }
    return entries;
  }

  /** Outbox entries removed because the reading they named was gone (never expected: see outboxAfter). */
  get danglingRemoved(): number {
    return this.#danglingRemoved;
  }

  /**
   * For each device with readings waiting in the outbox, the device time of its oldest one: retention must not delete
   * from there on, since the outbox names those readings rather than keeping a copy.
   */
  async outboxHolds(): Promise<Map<string, number>> {
    const holds = new Map<string, number>();
    for await (const value of this.#outbox.values()) {
      const v = decodeOutboxValue(value);
      if ('deviceId' in v) holds.set(v.deviceId, Math.min(holds.get(v.deviceId) ?? Infinity, v.ts));
    }
    return holds;
  }

  outboxStats(): { readings: number; bytes: number } {
    return { readings: this.#outboxReadings, bytes: this.#outboxBytes };
  }

  async outboxOldestRx(): Promise<number | null> {
    const [first] = await this.#outbox.keys({ limit: 1 }).all();
    if (first === undefined) return null;
    const [entry] = await this.outboxAfter(parseInt(first, 16) - 1, 1);
    return entry === undefined ? null : entry.reading.rx;
  }

  outboxDelete(entries: readonly { gseq: number; bytes: number }[]): Promise<void> {
    let done: Promise<void> = Promise.resolve();
    for (const e of entries) done = this.#outboxDone.enqueue(e, true);
    return done;
  }

  async sessionLoad(): Promise<SessionRecord[]> {
    const values = await this.#sessions.values().all();
    return values.map((v) => decodeValue(v) as SessionRecord);
  }

  sessionWrite(change: SessionChange): Promise<void> {
    return this.#session.enqueue(change, true);
  }

  #stageSession(batch: Batch, changes: readonly SessionChange[]): void {
    for (const change of changes) {
      if ('put' in change) {
        const key = seqKey((change.put.entries[0] as { gseq: number }).gseq);
        batch.put(this.#sessions.prefix + key, encodeValue(change.put));
      } else {
        const entries = change.complete.entries;
        if (change.stored) batch.del(this.#sessions.prefix + seqKey((entries[0] as { gseq: number }).gseq));
        for (const e of entries) batch.del(this.#outbox.prefix + seqKey(e.gseq));
      }
    }
  }

  #forgetOutbox(entries: readonly { bytes: number }[]): void {
    this.#outboxReadings -= entries.length;
    for (const e of entries) this.#outboxBytes -= e.bytes;
  }

  /** Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.committer.drain();
      if (this.#db.status === 'open') await this.#db.del(RUNNING_KEY, { sync: true } as never);
      await this.#db.close();
    })();
    return this.#closing;
  }
}

async function verifyAll(db: Db, unclean: boolean, log: Logger | undefined): Promise<void> {
  const started = performance.now();
  log?.info(
    unclean ? 'verifying the store: it was not closed cleanly' : 'verifying the store (store.verifyOnStart: always)',
  );
  let records = 0;
  let bytes = 0;
  let lastReport = started;
  for await (const [key, value] of db.iterator({ fillCache: false })) {
    records++;
    bytes += key.length + value.byteLength;
    if ((records & 0xfff) === 0 && performance.now() - lastReport > 5000) {
      lastReport = performance.now();
      log?.info({ records, bytes, seconds: Math.round((lastReport - started) / 1000) }, 'verifying the store');
    }
  }
  log?.info({ records, bytes, ms: Math.round(performance.now() - started) }, 'store verified');
}

/** What an entry counts against the backlog budget: itself and, when it names its reading, that reading. */
function outboxEntryBytes(key: string, raw: Uint8Array, value: OutboxValue): number {
  return key.length + raw.byteLength + ('deviceId' in value ? value.readingBytes : 0);
}

function defaultDb(dir: string): Db {
  return new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
}
