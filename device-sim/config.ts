/** device-sim configuration: config/device-sim.yaml (defaults) overridden by flags, validated once. */
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from 'zod';
import { parseFaults } from './faults.js';
import type { SimConfig } from './simulator.js';

const schema = z.strictObject({
  url: z
    .string()
    .regex(/^(mqtt|mqtts|ws|wss|tcp):\/\//, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
    .default('mqtt://127.0.0.1:1883'),
  gateway: z
    .string()
    .regex(/^https?:\/\//, 'must be an http(s):// URL')
    .default('http://127.0.0.1:8080'),
  devices: z.number().int().min(1).max(100_000).default(10),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal('mix')]).default('mix'),
  intervalMs: z.number().int().min(1).default(1000),
  durationS: z.number().positive().nullable().default(60),
  count: z.number().int().min(1).nullable().default(null),
  encoding: z.enum(['cbor', 'cbor-device', 'json', 'mix']).default('cbor'),
  seed: z.union([z.string(), z.number()]).transform(String).default('sensorgate'),
  ledgerDir: z.string().min(1).default('./sim-ledger'),
  faults: z.string().default('none'),
  idPrefix: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{0,40}$/)
    .default('ws-'),
  topicPrefix: z.string().min(1).default('sensors'),
  maxBuffer: z.number().int().min(1).default(1000),
  drainMs: z.number().int().min(0).default(10_000),
  username: z.string().nullable().default(null),
  password: z.string().nullable().default(null),
  ca: z.string().nullable().default(null),
  cert: z.string().nullable().default(null),
  key: z.string().nullable().default(null),
});

export type SimFileConfig = z.output<typeof schema>;

export async function loadSimConfig(
  path: string,
  optional: boolean,
  overrides: Record<string, unknown>,
): Promise<SimFileConfig> {
  let file: unknown = {};
  try {
    file = parse(await readFile(path, 'utf8')) ?? {};
  } catch (err) {
    if (!(optional && (err as NodeJS.ErrnoException).code === 'ENOENT')) throw err;
  }
  const merged = {
    ...(file as object),
    ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)),
  };
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    throw new Error(
      `invalid device-sim config:\n${parsed.error.issues.map((i) => `  - ${i.path.join('.') || '(root)'}: ${i.message}`).join('\n')}`,
    );
  }
  return parsed.data;
}

export function toSimConfig(c: SimFileConfig): SimConfig {
  return {
    url: c.url,
    devices: c.devices,
    qos: c.qos,
    intervalMs: c.intervalMs,
    durationS: c.count === null ? (c.durationS ?? 60) : undefined,
    count: c.count ?? undefined,
    encoding: c.encoding,
    seed: c.seed,
    ledgerDir: c.ledgerDir,
    faults: parseFaults(c.faults),
    username: c.username ?? undefined,
    password: c.password ?? undefined,
    tls:
      c.ca === null && c.cert === null && c.key === null
        ? undefined
        : { ca: c.ca ?? undefined, cert: c.cert ?? undefined, key: c.key ?? undefined },
    idPrefix: c.idPrefix,
    topicPrefix: c.topicPrefix,
    maxBuffer: c.maxBuffer,
    drainMs: c.drainMs,
  };
}
