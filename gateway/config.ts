import { readFile } from 'node:fs/promises';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ConfigError, GatewayError, type ConfigIssue } from './domain/errors.js';
import { DEVICE_ID_RE, parseTopicPattern } from './domain/topics.js';
import { DEVICE_CLOCKS } from './domain/clock.js';
import { FOREIGN_DEDUP } from './domain/foreign.js';
import { upstreamSchema } from './forward/options.js';
import { ROLES } from './auth/users-file.js';
import { VERIFY_MODES } from './store/level-store.js';

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);

const foreignRoute = z.strictObject({
  /** MQTT topic pattern with one `{deviceId}` level; `+` matches any single level. */
  topic: z
    .string()
    .min(1)
    .refine((t) => parseTopicPattern(t).ok, {
      message: 'must be MQTT topic levels with exactly one {deviceId} level and no #',
    }),
  /** Which identical payloads are duplicates (foreign.ts ForeignDedup). */
  dedup: z.enum(FOREIGN_DEDUP).default('time'),
  /** With dedup `time`: the top-level field that carries the device's own time (Tasmota's `Time`). */
  timeField: z.string().min(1).default('Time'),
});

const filter = z
  .string()
  .min(1)
  .refine((f) => f.split('/').every((l, i, all) => (l === '#' ? i === all.length - 1 : l === '+' || !/[#+]/.test(l))), {
    message: 'must be an MQTT topic filter (+ and # as whole levels, # only last)',
  });

const grants = (publish: string[], subscribe: string[]) =>
  z
    .strictObject({
      publish: z.array(filter).default(publish),
      subscribe: z.array(filter).default(subscribe),
    })
    .prefault({});

const LOOPBACK = /^(?:127(?:\.\d{1,3}){3}|::1|localhost)$/;

/** The listeners reachable from the LAN, by config path: they need authentication unless anonymous access was asked for. */
function openListeners(c: {
  mqtt: { host: string; tls: { host: string; clientCerts: string } | null; ws: { host: string } | null };
  http: { host: string };
}): { path: string[]; host: string; kind: 'mqtt' | 'http'; certs: boolean }[] {
  const all = [
    { path: ['mqtt', 'host'], host: c.mqtt.host, kind: 'mqtt' as const, certs: false },
    { path: ['http', 'host'], host: c.http.host, kind: 'http' as const, certs: false },
    ...(c.mqtt.tls
      ? [
          {
            path: ['mqtt', 'tls', 'host'],
            host: c.mqtt.tls.host,
            kind: 'mqtt' as const,
            certs: c.mqtt.tls.clientCerts === 'require',
          },
        ]
      : []),
    ...(c.mqtt.ws ? [{ path: ['mqtt', 'ws', 'host'], host: c.mqtt.ws.host, kind: 'mqtt' as const, certs: false }] : []),
  ];
  return all.filter((l) => !LOOPBACK.test(l.host));
}

export const configSchema = z
  .strictObject({
    gatewayId: z.string().regex(DEVICE_ID_RE, `must match ${DEVICE_ID_RE.source}`).default('sensorgate'),
    mqtt: z
      .strictObject({
        host: host.default('127.0.0.1'),
        port: port.default(1883),
        /** A packet declaring more is refused (connection closed) before its body is read. */
        maxPacketBytes: z
          .number()
          .int()
          .min(1024)
          .max(256 * 1024 * 1024)
          .default(256 * 1024),
        maxConnections: z.number().int().min(1).max(1_000_000).default(1000),
        /** Time from TCP accept to CONNECT. */
        connectTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
        /** The largest keepalive a client may ask for; 0 ("never time out") is refused too. */
        maxKeepaliveSeconds: z.number().int().min(1).max(65_535).default(3600),
        /** Messages queued for a persistent session while it is offline; beyond, new ones are dropped and counted. */
        maxQueuedMessages: z.number().int().min(1).max(10_000_000).default(1000),
        /** A persistent session whose client stays offline this long is removed (subscriptions and queue). */
        sessionExpirySeconds: z
          .number()
          .int()
          .min(1)
          .max(10 * 365 * 86_400)
          .default(7 * 86_400),
        /** Bytes written to a client and not yet sent (beyond what the kernel holds); beyond, it is disconnected. */
        maxOutgoingBufferBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .max(1024 * 1024 * 1024)
          .default(1024 * 1024),
        /** MQTT over TLS on its own address; null: none. */
        tls: z
          .strictObject({
            host: host.default('127.0.0.1'),
            port: port.default(8883),
            cert: z.string().min(1),
            key: z.string().min(1),
            /** The CA that signs device certificates. */
            ca: z.string().min(1).nullable().default(null),
            /** require: a device must show a certificate from `ca`, whose CN is its identity. */
            clientCerts: z.enum(['none', 'request', 'require']).default('none'),
          })
          .nullable()
          .default(null),
        /** MQTT over WebSocket (for browser dashboards); `tls` makes it wss. null: none. */
        ws: z
          .strictObject({
            host: host.default('127.0.0.1'),
            port: port.default(8083),
            path: z.string().startsWith('/').default('/mqtt'),
            tls: z
              .strictObject({ cert: z.string().min(1), key: z.string().min(1) })
              .nullable()
              .default(null),
          })
          .nullable()
          .default(null),
      })
      .prefault({}),
    auth: z
      .strictObject({
        /** Users with salted hashes and roles (gateway passwd add); null: no users. */
        usersFile: z.string().min(1).nullable().default(null),
        /** Bearer tokens of the HTTP API, hashed (gateway token add); null: the API is open. */
        tokensFile: z.string().min(1).nullable().default(null),
        /** true: anonymous clients allowed; false: never; unset: only while no users file is configured. */
        allowAnonymous: z.boolean().nullable().default(null),
        anonymousRole: z.enum(ROLES).default('admin'),
        /** What each role may publish and subscribe to; `{prefix}`, `{username}` and `{clientid}` are filled in. */
        roles: z
          .strictObject({
            device: grants(['{prefix}/{username}/#'], ['{prefix}/{username}/#']),
            reader: grants([], ['#']),
            admin: grants(['#'], ['#', '$SYS/#']),
          })
          .prefault({}),
      })
      .prefault({}),
    http: z
      .strictObject({
        host: host.default('127.0.0.1'),
        port: port.default(8080),
      })
      .prefault({}),
    store: z
      .strictObject({
        dataDir: z.string().min(1).default('./data'),
        syncWrites: z.boolean().default(true),
        /** Synced batches start at most this often (ms); a QoS 1/2 ack waits up to this long for its shared fsync. */
        commitIntervalMs: z.number().int().min(0).max(10_000).default(0),
        maxBatch: z.number().int().min(1).max(65536).default(1024),
        /** Read the whole database at start-up: after an unclean shutdown (true, from 0.1.0 on), always, or never (false). */
        verifyOnStart: z
          .union([z.boolean(), z.enum(VERIFY_MODES)])
          .default('unclean')
          .transform((v) => (v === true ? 'unclean' : v === false ? 'never' : v)),
        syncInboundQos2: z.boolean().default(true),
        minFreeBytes: z
          .number()
          .int()
          .min(0)
          .default(64 * 1024 * 1024),
        diskCheckMs: z.number().int().min(10).max(60_000).default(1000),
      })
      .prefault({}),
    ingest: z
      .strictObject({
        topicPrefix: z
          .string()
          .min(1)
          .regex(/^[^#+]+$/, 'must not contain MQTT wildcards')
          .refine((p) => !p.startsWith('/') && !p.endsWith('/'), 'must not start or end with /')
          .default('sensors'),
        maxPayloadBytes: z.number().int().min(64).max(1_048_576).default(8192),
        dedupWindow: z
          .number()
          .int()
          .min(8)
          .max(65536)
          .refine((n) => n % 8 === 0, 'must be a multiple of 8')
          .default(1024),
        foreign: z.array(foreignRoute).default([]),
        foreignDedupWindowMs: z.number().int().min(0).max(86_400_000).default(60_000),
        deviceClock: z.enum(DEVICE_CLOCKS).default('auto'),
        maxClockSkewMs: z
          .number()
          .int()
          .min(0)
          .max(31 * 86_400_000)
          .default(3_600_000),
        resetConfirmations: z.number().int().min(1).max(1000).default(3),
        maxSeqJump: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(1_000_000),
        maxBootJump: z.number().int().min(1).max(0xffff_ffff).default(1000),
        rejectLogIntervalMs: z.number().int().min(0).default(60_000),
      })
      .prefault({}),
    retention: z
      .strictObject({
        /** Readings older than this (by their time) are deleted; null: kept for ever. */
        maxAgeDays: z.number().positive().max(36_500).nullable().default(null),
        /** While the database's files take more, the oldest readings are deleted; null: no bound. */
        maxBytes: z
          .number()
          .int()
          .min(1024 * 1024)
          .nullable()
          .default(null),
        /** How often retention runs (also once at start-up), ms. */
        intervalMs: z.number().int().min(100).max(86_400_000).default(3_600_000),
      })
      .prefault({}),
    deadLetters: z
      .strictObject({
        /** Bytes of a rejected payload kept in its dead letter (its full size is kept too). */
        maxPayloadBytes: z.number().int().min(0).max(1_048_576).default(8192),
        /** Dead letters kept; beyond, the oldest are deleted and counted. */
        maxCount: z.number().int().min(1).max(10_000_000).default(10_000),
      })
      .prefault({}),
    upstream: upstreamSchema,
    /** The page at / (docs/ui.md). */
    ui: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** A station is silent after this long without a reading; null: after three of its usual intervals. */
        silentAfterMs: z
          .number()
          .int()
          .min(1000)
          .max(31 * 86_400_000)
          .nullable()
          .default(null),
        /** Until a station's usual interval is known (two readings since start-up, or its stored ones). */
        fallbackSilentAfterMs: z
          .number()
          .int()
          .min(1000)
          .max(31 * 86_400_000)
          .default(600_000),
        /** A battery reading (batt_v) below this is low. */
        lowBatteryVolts: z.number().min(0).max(60).default(3.4),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .prefault({}),
    shutdown: z
      .strictObject({
        timeoutMs: z.number().int().min(100).max(600_000).default(10_000),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    if (c.upstream.backoff.capMs < c.upstream.backoff.baseMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['upstream', 'backoff', 'capMs'],
        message: 'must be at least backoff.baseMs',
      });
    }
    if ((c.upstream.tls.cert === null) !== (c.upstream.tls.key === null)) {
      ctx.addIssue({ code: 'custom', path: ['upstream', 'tls'], message: 'cert and key go together' });
    }
    if (c.auth.allowAnonymous !== true) {
      for (const listener of openListeners(c)) {
        if (listener.kind === 'mqtt' && (c.auth.usersFile !== null || listener.certs)) continue;
        if (listener.kind === 'http' && c.auth.tokensFile !== null) continue;
        ctx.addIssue({
          code: 'custom',
          path: listener.path,
          message:
            listener.kind === 'mqtt'
              ? `${listener.host} is not loopback and no authentication is configured: set auth.usersFile (create users with gateway passwd add) or, to let anyone on the network in, auth.allowAnonymous: true`
              : `${c.http.host} is not loopback and the HTTP API has no tokens: set auth.tokensFile (create tokens with gateway token add), keep http.host on 127.0.0.1, or set auth.allowAnonymous: true to open it to the network`,
        });
      }
    }
    if (c.auth.allowAnonymous === false && c.auth.usersFile === null) {
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'allowAnonymous'],
        message: 'false needs auth.usersFile: nobody could connect',
      });
    }
    if (c.mqtt.port !== 0 && c.mqtt.port === c.http.port && c.mqtt.host === c.http.host) {
      ctx.addIssue({ code: 'custom', path: ['http', 'port'], message: `must differ from mqtt.port (${c.mqtt.port})` });
    }
  });

export type GatewayConfig = z.output<typeof configSchema>;
export type StoreConfig = GatewayConfig['store'];
export type IngestConfig = GatewayConfig['ingest'];
export type UpstreamConfig = GatewayConfig['upstream'];

type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

export type FrozenConfig = DeepReadonly<GatewayConfig>;

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates a raw config object once; throws ConfigError listing every problem with its path. */
export function loadConfig(raw: unknown, source = '(inline)'): FrozenConfig {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    const issues: ConfigIssue[] = result.error.issues.map((i) => {
      const path = i.path.map(String).join('.');
      if (i.code === 'unrecognized_keys') {
        return { path, message: `unknown key(s): ${i.keys.join(', ')}` };
      }
      return { path, message: i.message };
    });
    throw new ConfigError(issues, source);
  }
  return deepFreeze(result.data);
}

/**
 * Reads a YAML config file. A missing file is an error unless `optional` (the default path may be absent when the
 * gateway runs from an installed package); a YAML syntax error is reported like a schema problem.
 */
export async function readConfigFile(path: string, optional: boolean): Promise<{ raw: unknown; found: boolean }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return { raw: {}, found: false };
    throw new GatewayError('GW_CONFIG_UNREADABLE', `cannot read config ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    return { raw: parseYaml(text) ?? {}, found: true };
  } catch (err) {
    if (err instanceof YAMLParseError) {
      throw new ConfigError([{ path: '', message: `YAML syntax: ${err.message}` }], path);
    }
    throw err;
  }
}
