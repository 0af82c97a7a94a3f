import { readFile } from 'node:fs/promises';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ConfigError, GatewayError, type ConfigIssue } from './errors.js';
import { parseTopicPattern } from './broker/topics.js';
import { DEVICE_CLOCKS } from './telemetry/clock.js';
import { FOREIGN_DEDUP } from './telemetry/foreign.js';

const port = z.number().int().min(0).max(65535);
const host = z.string().min(1);
const DEVICE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

const foreignRoute = z.strictObject({
  /** MQTT topic pattern with one `{deviceId}` level; `+` matches any single level. */
  topic: z.string().min(1).refine((t) => parseTopicPattern(t).ok, {
    message: 'must be MQTT topic levels with exactly one {deviceId} level and no #',
  }),
  /** Which identical payloads are duplicates (foreign.ts ForeignDedup). */
  dedup: z.enum(FOREIGN_DEDUP).default('time'),
  /** With dedup `time`: the top-level field that carries the device's own time (Tasmota's `Time`). */
  timeField: z.string().min(1).default('Time'),
});

export const configSchema = z
  .strictObject({
    gatewayId: z.string().regex(DEVICE_ID, 'must match ^[A-Za-z0-9_.-]{1,64}$').default('sensorgate'),
    mqtt: z
      .strictObject({
        host: host.default('127.0.0.1'),
        port: port.default(1883),
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
        maxBatch: z.number().int().min(1).max(65536).default(1024),
        verifyOnStart: z.boolean().default(true),
        syncInboundQos2: z.boolean().default(true),
        minFreeBytes: z.number().int().min(0).default(64 * 1024 * 1024),
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
        maxClockSkewMs: z.number().int().min(0).max(31 * 86_400_000).default(3_600_000),
        resetConfirmations: z.number().int().min(1).max(1000).default(3),
        maxSeqJump: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(1_000_000),
        maxBootJump: z.number().int().min(1).max(0xffff_ffff).default(1000),
        rejectLogIntervalMs: z.number().int().min(0).default(60_000),
      })
      .prefault({}),
    upstream: z
      .strictObject({
        enabled: z.boolean().default(false),
        url: z
          .string()
          .regex(/^(mqtt|mqtts|ws|wss):\/\/[^/]/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
          .default('mqtt://127.0.0.1:1884'),
        clientId: z.string().min(1).max(128).nullable().default(null),
        username: z.string().nullable().default(null),
        password: z.string().nullable().default(null),
        tls: z
          .strictObject({
            ca: z.string().nullable().default(null),
            cert: z.string().nullable().default(null),
            key: z.string().nullable().default(null),
            rejectUnauthorized: z.boolean().default(true),
          })
          .prefault({}),
        protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
        topicPrefix: z.string().min(1).regex(/^[^#+]+$/, 'must not contain MQTT wildcards').default('sensorgate'),
        topicTemplate: z
          .string()
          .refine((t) => t.includes('{deviceId}') && !/[#+]/.test(t), 'must contain {deviceId} and no wildcards')
          .default('{prefix}/{gatewayId}/{deviceId}/telemetry'),
        encoding: z.enum(['json', 'cbor']).default('json'),
        maxQos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(2),
        inflight: z.number().int().min(1).max(65535).default(20),
        backoff: z
          .strictObject({
            baseMs: z.number().int().min(1).default(1000),
            capMs: z.number().int().min(1).default(30_000),
            stableMs: z.number().int().min(0).default(60_000),
          })
          .prefault({}),
        backfillRate: z.number().positive().default(500),
        batchSize: z.number().int().min(1).max(1000).default(1),
        backlogBudgetBytes: z.number().int().min(1024).default(256 * 1024 * 1024),
        qos0Buffer: z.number().int().min(0).default(1000),
        sessionExpirySeconds: z.number().int().min(1).max(0xffff_ffff).default(7 * 86_400),
        keepaliveSeconds: z.number().int().min(1).max(65535).default(30),
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
      ctx.addIssue({ code: 'custom', path: ['upstream', 'backoff', 'capMs'], message: 'must be at least backoff.baseMs' });
    }
    if ((c.upstream.tls.cert === null) !== (c.upstream.tls.key === null)) {
      ctx.addIssue({ code: 'custom', path: ['upstream', 'tls'], message: 'cert and key go together' });
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
export async function readConfigFile(path: string, optional: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new GatewayError('GW_CONFIG_UNREADABLE', `cannot read config ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    if (err instanceof YAMLParseError) {
      throw new ConfigError([{ path: '', message: `YAML syntax: ${err.message}` }], path);
    }
    throw err;
  }
}
