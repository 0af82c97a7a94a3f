/**
 * The upstream link's settings, validated once by the gateway's config (config.ts composes this schema) and passed in.
 * Defined here so that the forwarder depends on nothing above it.
 */
import { z } from 'zod';

const MQTT_URL = /^(mqtt|mqtts|ws|wss):\/\/[^/]/;
/** One NATS server, or several (a cluster) separated by commas. */
const NATS_URLS = /^(nats|tls):\/\/[^/,\s]+(,(nats|tls):\/\/[^/,\s]+)*$/;

export const upstreamSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** mqtt: an MQTT broker; nats: NATS JetStream, exactly once into a stream (docs/scale.md). */
    kind: z.enum(['mqtt', 'nats']).default('mqtt'),
    url: z.string().default('mqtt://127.0.0.1:1884'),
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
        /** false only to measure what the jitter buys: every gateway cut off at once then retries at once. */
        jitter: z.boolean().default(true),
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
    nats: z
      .strictObject({
        /** The JetStream stream the readings go into; its subjects must capture `{prefix}.{gatewayId}.>`. */
        stream: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,64}$/)
          .default('SENSORGATE'),
        /** Create the stream at start-up when it does not exist (subjects `{prefix}.>`). */
        createStream: z.boolean().default(true),
        /** Replicas of a stream the gateway creates (3 on a three-node cluster). */
        replicas: z.number().int().min(1).max(5).default(1),
        /**
         * The duplicate window the stream must have at least, ms: a reading re-sent later than this after its first
         * attempt could be stored twice (docs/scale.md, "Sizing the duplicate window").
         */
        duplicateWindowMs: z.number().int().min(1000).default(120_000),
        /** How long a publish waits for the stream's acknowledgement, ms. */
        ackTimeoutMs: z.number().int().min(100).max(600_000).default(5000),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    const ok = c.kind === 'nats' ? NATS_URLS.test(c.url) : MQTT_URL.test(c.url);
    if (!ok) {
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        message:
          c.kind === 'nats'
            ? 'must be nats:// or tls:// URLs, comma-separated for a cluster'
            : 'must be an mqtt://, mqtts://, ws:// or wss:// URL',
      });
    }
  })
  .prefault({});

export type UpstreamOptions = z.output<typeof upstreamSchema>;
