/**
 * The device → gateway wire contract, version 1 (README.md, "The wire contract"). This is the only gateway module that
 * device-sim imports; it depends on nothing outside gateway/domain/.
 */
import { z } from 'zod';
import { cborDecoder, cborEncoder } from './codec.js';
import type { RejectCode } from './errors.js';

/** Valid ranges of the weather measurements; other names are accepted if finite. */
export const WEATHER_RANGES: Readonly<Record<string, readonly [number, number]>> = Object.freeze({
  temp_c: [-90, 60],
  rh_pct: [0, 100],
  pres_hpa: [300, 1100],
  wind_ms: [0, 120],
  wind_deg: [0, 360],
  rain_mm: [0, 500],
  lux: [0, 200_000],
  batt_v: [0, 60],
});

const MAX_MEASUREMENTS = 64;
const MEASUREMENT_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * A CBOR integer as a number. Device libraries write every integer in its smallest form, so a millisecond timestamp
 * (above 2^32) arrives as a uint64, which cbor-x decodes to a BigInt; one that fits in 53 bits is the same number.
 */
function safeInteger(value: bigint): number | null {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : null;
}

const beyondSafe = (value: bigint) => `integer ${value} is beyond ±(2^53 − 1)`;

/** A number, or a CBOR (u)int64 that fits in 53 bits; then the checks of `number`. */
function wireInteger(number: z.ZodNumber) {
  return z
    .union([z.number(), z.bigint()])
    .transform((value, ctx) => {
      if (typeof value === 'number') return value;
      const n = safeInteger(value);
      if (n === null) ctx.issues.push({ code: 'custom', input: value, message: beyondSafe(value) });
      return n ?? 0;
    })
    .pipe(number);
}

/**
 * The device time: ms since the Unix epoch, or a CBOR date (tag 1, epoch seconds, integer or float; tag 0, an RFC 3339
 * string), which cbor-x decodes to a Date.
 */
const timestamp = z
  .union([z.number(), z.bigint(), z.date()])
  .transform((value, ctx) => {
    if (typeof value === 'number') return value;
    const n = value instanceof Date ? value.getTime() : safeInteger(value);
    if (n === null || Number.isNaN(n)) {
      ctx.issues.push({
        code: 'custom',
        input: value,
        message: value instanceof Date ? 'invalid date' : beyondSafe(value as bigint),
      });
      return 0;
    }
    return n;
  })
  .pipe(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER));

const isMap = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);

/**
 * The measurements map, checked in one pass. `z.record` with per-key and per-value schemas builds a new object and
 * an issue list per entry, most of the validation's cost (docs/benchmarks.md, "Changes"); this is the hot path of
 * every reading, so the map is checked here and zod still reports the issues with their paths.
 */
const measurements = z.custom<Record<string, number>>().check((ctx) => {
  const m = ctx.value;
  if (!isMap(m)) {
    ctx.issues.push({ code: 'custom', input: m, message: 'expected a map of measurement name to number' });
    return;
  }
  const names = Object.keys(m);
  if (names.length === 0)
    ctx.issues.push({ code: 'custom', input: m, message: 'at least one measurement is required' });
  if (names.length > MAX_MEASUREMENTS) {
    ctx.issues.push({ code: 'custom', input: m, message: `at most ${MAX_MEASUREMENTS} measurements` });
  }
  for (const name of names) {
    let value = m[name];
    if (typeof value === 'bigint') {
      const n = safeInteger(value);
      if (n === null) {
        ctx.issues.push({ code: 'custom', input: value, path: [name], message: beyondSafe(value) });
        continue;
      }
      // Only its own freshly decoded map is written to.
      m[name] = value = n;
    }
    if (!MEASUREMENT_NAME.test(name)) {
      ctx.issues.push({
        code: 'custom',
        input: name,
        path: [name],
        message: `measurement names match ${MEASUREMENT_NAME.source}`,
      });
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      ctx.issues.push({ code: 'custom', input: value, path: [name], message: 'must be a finite number' });
      continue;
    }
    const range = WEATHER_RANGES[name];
    if (range && (value < range[0] || value > range[1])) {
      ctx.issues.push({
        code: 'custom',
        input: value,
        path: [name],
        message: `out of range ${range[0]}…${range[1]}: ${value}`,
      });
    }
  }
});

export const readingSchema = z.strictObject({
  v: wireInteger(z.number()).pipe(z.literal(1)),
  boot: wireInteger(z.number().int().min(0).max(0xffff_ffff)),
  seq: wireInteger(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)),
  ts: timestamp,
  m: measurements,
  id: z.string().optional(),
});

/** A validated contract reading. */
export type Reading = z.output<typeof readingSchema>;

export type Encoding = 'cbor' | 'json';
/**
 * How a device writes a reading: `cbor` as cbor-x does (integers above 2^32 as float64), `cbor-device` as device
 * libraries do (every integer in its smallest form: a millisecond `ts` as a uint64), or `json`.
 */
export type DeviceEncoding = Encoding | 'cbor-device';

export type Rejection = { ok: false; code: RejectCode; reason: string };
export type Decoded<T> = { ok: true; value: T; encoding: Encoding } | Rejection;

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const JSON_START = new Set([...'{["-0123456789tfn'].map((c) => c.charCodeAt(0)));

/** Where the content starts: after a UTF-8 byte order mark, which some JSON writers (.NET, PowerShell) put first. */
function contentStart(payload: Uint8Array): number {
  return payload[0] === 0xef && payload[1] === 0xbb && payload[2] === 0xbf ? 3 : 0;
}

/**
 * The MQTT 5 content type where present, else JSON if the first non-blank byte starts a JSON value (`{`, `[`, `"`, a
 * digit, `-`, `t`, `f`, `n`: a Shelly publishes a bare `21.5`), else CBOR. A CBOR map, the only CBOR a reading can be,
 * starts with a byte from 0xa0 to 0xbf, none of which is one of those.
 */
export function detectEncoding(payload: Uint8Array, contentType?: string): Encoding {
  if (contentType !== undefined) {
    if (/json/i.test(contentType)) return 'json';
    if (/cbor/i.test(contentType)) return 'cbor';
  }
  for (let i = contentStart(payload); i < payload.length; i++) {
    const byte = payload[i] as number;
    if (WHITESPACE.has(byte)) continue;
    return JSON_START.has(byte) ? 'json' : 'cbor';
  }
  return 'cbor';
}

/** Decodes bytes into an untrusted value; never throws. */
export function decodePayload(payload: Uint8Array, maxBytes: number, contentType?: string): Decoded<unknown> {
  if (payload.byteLength > maxBytes) {
    return {
      ok: false,
      code: 'GW_PAYLOAD_TOO_LARGE',
      reason: `payload of ${payload.byteLength} bytes exceeds ${maxBytes}`,
    };
  }
  const encoding = detectEncoding(payload, contentType);
  try {
    const value: unknown =
      encoding === 'json'
        ? JSON.parse(
            Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8', contentStart(payload)),
          )
        : cborDecoder.decode(payload);
    return { ok: true, value, encoding };
  } catch (err) {
    return { ok: false, code: 'GW_PAYLOAD_UNDECODABLE', reason: `not valid ${encoding}: ${(err as Error).message}` };
  }
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => {
      const path = i.path.map(String).join('.');
      const message = i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message;
      return path ? `${path}: ${message}` : message;
    })
    .join('; ');
}

/** Validates an untrusted value against the contract for the device named by the topic. */
export function validateReading(value: unknown, deviceId: string): { ok: true; value: Reading } | Rejection {
  const parsed = readingSchema.safeParse(value);
  if (!parsed.success) return { ok: false, code: 'GW_PAYLOAD_INVALID', reason: describeIssues(parsed.error) };
  if (parsed.data.id !== undefined && parsed.data.id !== deviceId) {
    return {
      ok: false,
      code: 'GW_DEVICE_ID_MISMATCH',
      reason: `id "${parsed.data.id}" does not match topic device "${deviceId}"`,
    };
  }
  return { ok: true, value: parsed.data };
}

/** decodePayload then validateReading: bytes in, a typed Reading or a rejection with its reason out. */
export function decodeReading(
  payload: Uint8Array,
  deviceId: string,
  opts: { maxBytes: number; contentType?: string | undefined },
): Decoded<Reading> {
  const decoded = decodePayload(payload, opts.maxBytes, opts.contentType);
  if (!decoded.ok) return decoded;
  const valid = validateReading(decoded.value, deviceId);
  return valid.ok ? { ok: true, value: valid.value, encoding: decoded.encoding } : valid;
}

/** Encodes a reading the way a contract device does. */
export function encodeReading(reading: Reading, encoding: DeviceEncoding): Buffer {
  if (encoding === 'json') return Buffer.from(JSON.stringify(reading));
  if (encoding === 'cbor') return cborEncoder.encode(reading);
  // cbor-x writes a BigInt as a uint64, the smallest form of an integer above 2^32.
  const wide = (n: number): number | bigint => (Number.isInteger(n) && n > 0xffff_ffff ? BigInt(n) : n);
  return cborEncoder.encode({ ...reading, seq: wide(reading.seq), ts: wide(reading.ts) });
}
