/** HTTP API handlers: JSON over node:http. Each handler gets parsed inputs and returns a status and a body. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { once } from 'node:events';
import { gzipSync } from 'node:zlib';
import type { Counters, DeviceRecord, StoredReading } from '../domain/model.js';
import type { TelemetryStore } from '../ingest/store-port.js';
import { encodeBackupLine } from '../shared/backup-format.js';
import { DEVICE_ID_RE } from '../domain/topics.js';
import { Downsampler } from '../domain/series.js';
import type { Live } from './live.js';
import type { UiFiles } from './ui-files.js';
import type {
  ByQos,
  DeadLettersView,
  DevicesView,
  DeviceView,
  ErrorView,
  HealthView,
  ReadingsView,
  SeriesView,
  StatsView,
  StorageView,
} from './views.js';

export interface ApiDeps {
  store: TelemetryStore;
  registry: Registry;
  devices(): DeviceRecord[];
  totals(): readonly [Counters, Counters, Counters];
  forwarding(): Promise<unknown>;
  /** null when healthy, else why not. */
  unhealthyReason(): string | null;
  /** Device time of the device's oldest reading kept, or null. */
  oldestTs(deviceId: string): Promise<number | null>;
  storage(): Promise<StorageView>;
  /** Every record of the store as one consistent snapshot, for a backup. */
  snapshot(): AsyncIterable<[string, Uint8Array]>;
  /** Readings of every device with a device time in [fromTs, toTs], device by device, in constant memory. */
  readingsBetween(fromTs: number, toTs: number): AsyncIterable<StoredReading>;
  /** The scope a request's Authorization header grants, or null (refused). */
  scopeOf(authorization: string | undefined): 'read' | 'admin' | null;
  /** One device's readings with a device time in [fromTs, toTs], in time order. */
  deviceReadings(deviceId: string, fromTs: number, toTs: number): AsyncIterable<StoredReading>;
  live: Live;
  /** The page's files, or why there is no page (ui.enabled is false, or the files could not be read). */
  ui: UiFiles | string;
  now(): number;
}

type Scope = 'read' | 'admin';
type Handler = (
  match: RegExpMatchArray,
  params: URLSearchParams,
  res: ServerResponse,
  scope: Scope,
  req: IncomingMessage,
) => Promise<void>;

/** Buckets a series answer may have: bounds its memory and its size. */
const MAX_BUCKETS = 5000;
/** Series computed at once; each reads its whole range. */
const MAX_SERIES = 4;

class BadRequest extends Error {}

/** A percent-encoded path segment; bad encoding is the client's error, not ours. */
function decodePath(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new BadRequest('bad percent-encoding in the path');
  }
}

function byQos(c: readonly [Counters, Counters, Counters]): ByQos<Counters> {
  return { qos0: c[0], qos1: c[1], qos2: c[2] };
}

function intParam(params: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const raw = params.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new BadRequest(`${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** Long format, one row per measurement: the columns stay the same whatever each device measures. */
const CSV_HEADER = 'device_id,ts,boot,seq,qos,rx,measurement,value\n';

function csvLines(r: StoredReading): string {
  // Device ids and measurement names are limited to characters that need no CSV quoting (wire.ts, topics.ts).
  const prefix = `${r.deviceId},${r.ts},${r.boot},${r.seq},${r.qos},${r.rx},`;
  return Object.entries(r.m)
    .map(([name, value]) => `${prefix}${name},${value}\n`)
    .join('');
}

/** Streamed answers (export, backup) under way at once; each holds a LevelDB iterator and reads the whole range. */
const MAX_STREAMS = 2;
/** A client that reads nothing for this long loses its stream: a stalled reader must not pin an iterator for ever. */
const STREAM_STALL_MS = 60_000;

/**
 * Sends lines as they come, at the client's pace (waiting for the socket to drain rather than buffering the range),
 * at most MAX_STREAMS at a time (503 beyond).
 */
class Streams {
  #open = 0;

  async send(res: ServerResponse, lines: AsyncIterable<string>, headers: Record<string, string>): Promise<void> {
    if (this.#open >= MAX_STREAMS) {
      res.setHeader('retry-after', '10');
      return send(res, 503, {
        error: 'GW_HTTP_BUSY',
        message: `${MAX_STREAMS} exports or backups are already running`,
      } satisfies ErrorView);
    }
    this.#open++;
    res.writeHead(200, headers);
    try {
      for await (const line of lines) {
        if (!res.write(line)) await once(res, 'drain', { signal: AbortSignal.timeout(STREAM_STALL_MS) });
      }
      res.end();
    } catch (err) {
      // The status line is gone: all that is left is to cut the response short, so the client sees it incomplete.
      res.destroy(err as Error);
    } finally {
      this.#open--;
    }
  }
}

/** Answers above this are gzipped for a client that takes gzip: the page asks for every device every 5 s. */
const GZIP_ABOVE = 1024;

function acceptsGzip(req: IncomingMessage): boolean {
  return /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = Buffer.from(type === 'application/json' ? JSON.stringify(body) : String(body));
  const gzip = text.length > GZIP_ABOVE && acceptsGzip(res.req);
  const out = gzip ? gzipSync(text) : text;
  res.writeHead(status, {
    'content-type': type,
    'content-length': out.length,
    vary: 'accept-encoding',
    ...(gzip ? { 'content-encoding': 'gzip' } : {}),
  });
  res.end(out);
}

/**
 * The page's files need no token: they hold no data, and the page asks for the token itself when the API wants one.
 * Revalidated on every load (no-cache, with an ETag), so an upgrade shows at once.
 */
function serveUi(ui: UiFiles | string, path: string, req: IncomingMessage, res: ServerResponse): void {
  const file = typeof ui === 'string' ? undefined : ui.get(path);
  if (!file) {
    const message = typeof ui === 'string' ? ui : `no route ${path}`;
    send(res, 404, { error: 'GW_HTTP_NOT_FOUND', message } satisfies ErrorView);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, { error: 'GW_HTTP_METHOD', message: 'only GET is supported' } satisfies ErrorView);
    return;
  }
  const headers = { etag: file.etag, 'cache-control': 'no-cache', vary: 'accept-encoding' };
  if (req.headers['if-none-match'] === file.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const gzip = acceptsGzip(req);
  const body = gzip ? file.gzip : file.body;
  res.writeHead(200, {
    ...headers,
    'content-type': file.type,
    'content-length': body.length,
    ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    // The page's own scripts and styles only: nothing from elsewhere, no inline script.
    'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    'x-content-type-options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function createApiHandler(deps: ApiDeps): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const streams = new Streams();
  let seriesRunning = 0;
  const routes: [RegExp, Handler][] = [
    [
      /^\/healthz$/,
      async (_m, _p, res) => {
        const reason = deps.unhealthyReason();
        const body: HealthView = reason === null ? { status: 'ok' } : { status: 'unavailable', reason };
        send(res, reason === null ? 200 : 503, body);
      },
    ],
    [/^\/metrics$/, async (_m, _p, res) => send(res, 200, await deps.registry.metrics(), deps.registry.contentType)],
    [
      /^\/api\/v1\/stats$/,
      async (_m, _p, res) =>
        send(res, 200, { ...byQos(deps.totals()), storage: await deps.storage() } satisfies StatsView),
    ],
    [/^\/api\/v1\/forwarding$/, async (_m, _p, res) => send(res, 200, await deps.forwarding())],
    [
      /^\/api\/v1\/devices$/,
      async (_m, params, res) => {
        const limit = intParam(params, 'limit', 1, 10_000) ?? 1000;
        const after = params.get('after') ?? '';
        const page = deps
          .devices()
          .filter((d) => d.id > after)
          .sort((a, b) => (a.id < b.id ? -1 : 1))
          .slice(0, limit);
        // One seek at a time: a page holds up to 10 000 devices, and each seek opens a LevelDB iterator.
        const devices: DeviceView[] = [];
        const now = deps.now();
        for (const d of page) {
          devices.push({
            id: d.id,
            boot: d.dedup?.current.boot ?? null,
            highSeq: d.dedup?.current.highSeq ?? null,
            lastSeen: d.lastSeen,
            oldestTs: await deps.oldestTs(d.id),
            bootResets: d.bootResets,
            counters: byQos(d.counters),
            ...(await deps.live.station(d.id, d.lastSeen, now)),
          });
        }
        const next = page.length === limit ? (page.at(-1)?.id ?? null) : null;
        send(res, 200, { devices, next } satisfies DevicesView);
      },
    ],
    [
      /^\/api\/v1\/devices\/([^/]+)\/readings$/,
      async (m, params, res) => {
        const id = decodePath(m[1] as string);
        if (!DEVICE_ID_RE.test(id)) throw new BadRequest('invalid device id');
        const fromTs = intParam(params, 'from', 0, Number.MAX_SAFE_INTEGER - 1);
        const toTs = intParam(params, 'to', 0, Number.MAX_SAFE_INTEGER - 1);
        const limit = intParam(params, 'limit', 1, 10_000) ?? 1000;
        const cursor = params.get('cursor') ?? undefined;
        if (cursor !== undefined && !/^[A-Za-z0-9_-]{1,400}$/.test(cursor)) throw new BadRequest('invalid cursor');
        const page = await deps.store.readings(id, {
          limit,
          ...(fromTs === undefined ? {} : { fromTs }),
          ...(toTs === undefined ? {} : { toTs }),
          ...(cursor === undefined ? {} : { cursor }),
        });
        send(res, 200, { readings: page.items, next: page.next } satisfies ReadingsView);
      },
    ],
    [
      /^\/api\/v1\/devices\/([^/]+)\/series$/,
      async (m, params, res) => {
        const id = decodePath(m[1] as string);
        if (!DEVICE_ID_RE.test(id)) throw new BadRequest('invalid device id');
        const to = intParam(params, 'to', 1, Number.MAX_SAFE_INTEGER - 1) ?? deps.now();
        const from = intParam(params, 'from', 0, to - 1) ?? to - 3_600_000;
        const step = intParam(params, 'step', 1, Number.MAX_SAFE_INTEGER) ?? Math.max(1, Math.ceil((to - from) / 300));
        const query = { from, to, step };
        if (Downsampler.buckets(query) > MAX_BUCKETS) {
          throw new BadRequest(`(to - from) / step must be at most ${MAX_BUCKETS} buckets`);
        }
        if (seriesRunning >= MAX_SERIES) {
          res.setHeader('retry-after', '1');
          return send(res, 503, {
            error: 'GW_HTTP_BUSY',
            message: `${MAX_SERIES} series are already being computed`,
          } satisfies ErrorView);
        }
        seriesRunning++;
        try {
          const series = new Downsampler(query);
          for await (const r of deps.deviceReadings(id, from, to - 1)) series.add(r.ts, r.m);
          send(res, 200, { deviceId: id, ...query, buckets: series.result() } satisfies SeriesView);
        } finally {
          seriesRunning--;
        }
      },
    ],
    [/^\/api\/v1\/events$/, async (_m, _p, res, _scope, req) => deps.live.stream(req, res)],
    [
      /^\/api\/v1\/readings$/,
      async (_m, params, res) => {
        const fromTs = intParam(params, 'from', 0, Number.MAX_SAFE_INTEGER - 1) ?? 0;
        const toTs = intParam(params, 'to', 0, Number.MAX_SAFE_INTEGER - 1) ?? Number.MAX_SAFE_INTEGER - 1;
        const format = params.get('format') ?? 'ndjson';
        if (format !== 'ndjson' && format !== 'csv') throw new BadRequest('format must be csv or ndjson');
        const line = format === 'csv' ? csvLines : (r: StoredReading) => `${JSON.stringify(r)}\n`;
        async function* lines() {
          if (format === 'csv') yield CSV_HEADER;
          for await (const r of deps.readingsBetween(fromTs, toTs)) yield line(r);
        }
        await streams.send(res, lines(), {
          'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson',
          'content-disposition': `attachment; filename="readings-${fromTs}-${toTs}.${format}"`,
        });
      },
    ],
    [
      /^\/api\/v1\/backup$/,
      async (_m, _p, res, scope) => {
        if (scope !== 'admin') {
          return send(res, 403, {
            error: 'GW_HTTP_FORBIDDEN',
            message: 'a backup needs the admin scope',
          } satisfies ErrorView);
        }
        async function* lines() {
          for await (const record of deps.snapshot()) yield encodeBackupLine(record);
        }
        await streams.send(res, lines(), { 'content-type': 'application/x-ndjson' });
      },
    ],
    [
      /^\/api\/v1\/deadletter$/,
      async (_m, params, res, scope) => {
        const limit = intParam(params, 'limit', 1, 10_000) ?? 100;
        const items = (await deps.store.deadLetters(limit)).map((d) => ({
          ...d,
          payload: scope === 'admin' ? Buffer.from(d.payload).toString('base64') : null,
        }));
        send(res, 200, { deadLetters: items } satisfies DeadLettersView);
      },
    ],
  ];

  return async (req, res) => {
    // The path is taken as it is: `new URL('//x', base)` would read it as a host.
    const url = new URL(`http://localhost${(req.url ?? '/').startsWith('/') ? req.url : '/'}`);
    if (url.pathname === '/' || url.pathname.startsWith('/ui/')) return serveUi(deps.ui, url.pathname, req, res);
    const route = routes.find(([re]) => re.test(url.pathname));
    if (!route)
      return send(res, 404, { error: 'GW_HTTP_NOT_FOUND', message: `no route ${url.pathname}` } satisfies ErrorView);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(res, 405, { error: 'GW_HTTP_METHOD', message: 'only GET is supported' } satisfies ErrorView);
    }
    const scope = url.pathname === '/healthz' ? 'read' : deps.scopeOf(req.headers.authorization);
    if (scope === null) {
      res.setHeader('www-authenticate', 'Bearer');
      return send(res, 401, {
        error: 'GW_HTTP_UNAUTHORIZED',
        message: 'a bearer token is needed (gateway token add)',
      } satisfies ErrorView);
    }
    try {
      await route[1](url.pathname.match(route[0]) as RegExpMatchArray, url.searchParams, res, scope, req);
    } catch (err) {
      if (err instanceof BadRequest) {
        return send(res, 400, { error: 'GW_HTTP_BAD_REQUEST', message: err.message } satisfies ErrorView);
      }
      send(res, 500, { error: 'GW_HTTP_INTERNAL', message: (err as Error).message } satisfies ErrorView);
    }
  };
}
