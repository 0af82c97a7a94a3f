/**
 * The upstream link's settings, validated once by the gateway's config (config.ts composes this schema) and passed in.
 * Defined here so that the forwarder depends on nothing above it.
 */
import { z } from 'zod';

export const upstreamSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    url: z
      .string()
      .regex(/^(mqtt|mqtts|ws|wss):\/\/[^/]/, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
      .default('mqtt://127.0.0.1:1884'),
    clientId: z.string().min(1).max(128).nullable().default(null),
    username: z.string().nullable().default(null),
    password: z.string().nullable().default(null),
    /** A file whose first line is the password (read at start), instead of `password` in the config. */
    passwordFile: z.string().min(1).nullable().default(null),
    tls: z
      .strictObject({
        ca: z.string().nullable().default(null),
        cert: z.string().nullable().default(null),
        key: z.string().nullable().default(null),
        rejectUnauthorized: z.boolean().default(true),
      })
      .prefault({}),
    protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
    topicPrefix: z
      .string()
      .min(1)
      .regex(/^[^#+]+$/, 'must not contain MQTT wildcards')
      .default('sensorgate'),
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
    backlogBudgetBytes: z
      .number()
      .int()
      .min(1024)
      .default(256 * 1024 * 1024),
    qos0Buffer: z.number().int().min(0).default(1000),
    sessionExpirySeconds: z
      .number()
      .int()
      .min(1)
      .max(0xffff_ffff)
      .default(7 * 86_400),
    keepaliveSeconds: z.number().int().min(1).max(65535).default(30),
  })
  .prefault({});

export type UpstreamOptions = z.output<typeof upstreamSchema>;
