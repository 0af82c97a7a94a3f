/**
 * What the page shows as it happens: each device's newest reading and activity (silent or not), and a Server-Sent
 * Events stream of readings as they are committed. Bounded: at most MAX_CLIENTS streams, and a client that does not
 * read (more than MAX_BUFFERED bytes waiting) is cut off rather than buffered for, so it never slows the others.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Activity, type ActivityView } from '../domain/activity.js';
import type { StoredReading } from '../domain/model.js';
import type { CommitEntry } from '../ingest/store-port.js';
import type { ErrorView } from './views.js';

export type StationView = ActivityView & {
  /** Its newest reading, or null when none is kept. */
  latest: StoredReading | null;
  /** Its newest batt_v is below ui.lowBatteryVolts. */
  lowBattery: boolean;
};

const MAX_CLIENTS = 32;
const MAX_BUFFERED = 256 * 1024;
/** A comment line this often keeps proxies and phones from closing an idle stream. */
const HEARTBEAT_MS = 15_000;
/** Readings read back per device to learn its usual interval after a restart. */
const SEED_READINGS = 10;

export interface LiveOptions {
  /** ui.silentAfterMs: null for three usual intervals. */
  silentAfterMs: number | null;
  /** While a device's usual interval is unknown. */
  fallbackSilentAfterMs: number;
  /** ui.lowBatteryVolts: a newest batt_v below it is low. */
  lowBatteryVolts: number;
  /** The device's newest readings, newest first. */
  recent(deviceId: string, n: number): Promise<StoredReading[]>;
}

export class Live {
  readonly #activity: Activity;
  readonly #latest = new Map<string, StoredReading>();
  readonly #seeded = new Set<string>();
  readonly #clients = new Set<ServerResponse>();
  readonly #recent: LiveOptions['recent'];
  readonly #lowBatteryVolts: number;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(opts: LiveOptions) {
    this.#activity = new Activity(opts.silentAfterMs, opts.fallbackSilentAfterMs);
    this.#recent = opts.recent;
    this.#lowBatteryVolts = opts.lowBatteryVolts;
    this.#heartbeat = setInterval(() => this.#broadcast(': keep-alive\n\n'), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  committed(entries: readonly CommitEntry[]): void {
    for (const e of entries) {
      const r = e.reading;
      if (!r) continue;
      const previous = this.#latest.get(r.deviceId);
      if (!previous || r.ts >= previous.ts) this.#latest.set(r.deviceId, r);
      this.#activity.seen(r.deviceId, r.rx);
      if (this.#clients.size > 0) this.#broadcast(`event: reading\ndata: ${JSON.stringify(r)}\n\n`);
    }
  }

  /** The device's newest reading (read from the store once after a restart), or null when it has none. */
  async #newest(deviceId: string): Promise<StoredReading | null> {
    if (!this.#seeded.has(deviceId)) {
      this.#seeded.add(deviceId);
      const recent = await this.#recent(deviceId, SEED_READINGS);
      for (const r of [...recent].sort((a, b) => a.rx - b.rx)) this.#activity.seen(r.deviceId, r.rx);
      const newest = recent[0];
      const known = this.#latest.get(deviceId);
      if (newest && (!known || newest.ts > known.ts)) this.#latest.set(deviceId, newest);
    }
    return this.#latest.get(deviceId) ?? null;
  }

  /** What the page and the metrics show of a device: `lastSeen` from its record, which survives a restart. */
  async station(deviceId: string, lastSeen: number, now: number): Promise<StationView> {
    const latest = await this.#newest(deviceId);
    const battery = latest?.m.batt_v;
    return {
      latest,
      ...this.#activity.view(deviceId, lastSeen, now),
      lowBattery: battery !== undefined && battery < this.#lowBatteryVolts,
    };
  }

  /** GET /api/v1/events: `reading` events, one per committed reading, as JSON. */
  stream(req: IncomingMessage, res: ServerResponse): void {
    if (this.#clients.size >= MAX_CLIENTS) {
      const body: ErrorView = { error: 'GW_HTTP_BUSY', message: `${MAX_CLIENTS} live streams are already open` };
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '10' });
      res.end(JSON.stringify(body));
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    res.write('retry: 2000\n\n');
    this.#clients.add(res);
    const forget = () => this.#clients.delete(res);
    req.on('close', forget);
    res.on('close', forget);
  }

  #broadcast(chunk: string): void {
    for (const res of this.#clients) {
      if (res.writableLength > MAX_BUFFERED) {
        this.#clients.delete(res);
        res.destroy();
      } else res.write(chunk);
    }
  }

  close(): void {
    clearInterval(this.#heartbeat);
    for (const res of this.#clients) res.end();
    this.#clients.clear();
  }
}
