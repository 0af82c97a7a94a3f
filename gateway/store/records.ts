/**
 * The on-disk value format: CBOR, with a format tag on device records so that a later release can migrate them.
 * Device records are validated when loaded; they decide what gets acked, so a corrupt one must not be trusted.
 *
 * A device record is rewritten with every batch that has a reading of the device, so its size is most of the bytes
 * written per reading (SD wear, docs/operations.md). Format 2 keeps the counters as arrays in COUNTER_NAMES order and
 * the dedup window as runs of equal bytes: 495 bytes for a device of format 1 became about 100.
 * Upgrade rule (docs/operations.md, "Upgrades"): a release reads every format an earlier release wrote, and writes
 * only its newest; a record is migrated when the device next sends.
 */
import { z } from 'zod';
import { cborDecoder, cborEncoder } from '../domain/codec.js';
import { windowBytes, windowFromBytes, type EpochState } from '../domain/dedup.js';
import {
  COUNTER_NAMES,
  type Counters,
  type DeadLetter,
  type DeviceRecord,
  type StoredReading,
} from '../domain/model.js';

export const encodeValue = (value: unknown): Uint8Array => cborEncoder.encode(value);
export const decodeValue = (bytes: Uint8Array): unknown => cborDecoder.decode(bytes);

const DEVICE_FORMAT = 2;

const count = z.number().int();
const countersV1 = z.strictObject({
  received: count,
  stored: count,
  duplicate: count,
  stale: count,
  missing: count,
  late: count,
  rejected: count,
  // Absent from records written before it existed.
  gatewayTime: count.default(0),
});
const countersV2 = z
  .array(count)
  .length(COUNTER_NAMES.length)
  .transform((values) => Object.fromEntries(COUNTER_NAMES.map((name, i) => [name, values[i]])) as Counters);
const counters = z.union([countersV2, countersV1]);

/** Runs of equal bytes, [byte, count, byte, count, …]: a window with few gaps is all 0xff, or 0xff then zeros. */
function runsOf(bytes: Uint8Array): number[] {
  const runs: number[] = [];
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i] as number;
    let n = 1;
    while (i + n < bytes.length && bytes[i + n] === b) n++;
    runs.push(b, n);
    i += n;
  }
  return runs;
}

const windowRuns = z
  .array(count.min(0))
  .refine((runs) => runs.length % 2 === 0 && runs.every((v, i) => (i % 2 === 0 ? v <= 0xff : v >= 1)))
  .transform((runs) => {
    const bytes: number[] = [];
    for (let i = 0; i < runs.length; i += 2)
      for (let k = 0; k < (runs[i + 1] as number); k++) bytes.push(runs[i] as number);
    return Uint8Array.from(bytes);
  });
// On disk the dedup window is a byte string (format 1) or its runs, whichever is shorter (format 2); in memory
// 32-bit words (see EpochState).
const epoch = z
  .strictObject({ boot: count, highSeq: count, window: z.union([z.instanceof(Uint8Array), windowRuns]) })
  .transform(({ boot, highSeq, window }) => ({ boot, highSeq, ...windowFromBytes(window) }));
const deviceSchema = z.strictObject({
  f: z.union([z.literal(1), z.literal(DEVICE_FORMAT)]),
  id: z.string(),
  dedup: z
    .strictObject({
      current: epoch,
      previous: epoch.nullable(),
      newestTs: count.default(0),
      candidate: z.strictObject({ boot: count, seq: count, count }).nullable().default(null),
    })
    .nullable(),
  foreign: z.strictObject({ nextSeq: count, recent: z.array(z.tuple([z.string(), z.number()])) }).nullable(),
  lastSeen: z.number(),
  counters: z.tuple([counters, counters, counters]),
  bootResets: count.default(0),
});

function epochValue(e: EpochState) {
  const bytes = windowBytes(e);
  const runs = runsOf(bytes);
  // A run costs up to 4 bytes of CBOR (a byte above 23, a count above 23); raw bytes cost one each.
  return { boot: e.boot, highSeq: e.highSeq, window: runs.length * 2 < bytes.length ? runs : bytes };
}

export function encodeDevice(record: DeviceRecord): Uint8Array {
  const { dedup } = record;
  return cborEncoder.encode({
    f: DEVICE_FORMAT,
    ...record,
    counters: record.counters.map((c) => COUNTER_NAMES.map((name) => c[name])),
    dedup: dedup && {
      current: epochValue(dedup.current),
      previous: dedup.previous && epochValue(dedup.previous),
      newestTs: dedup.newestTs ?? 0,
      candidate: dedup.candidate ?? null,
    },
  });
}

export function decodeDevice(bytes: Uint8Array): DeviceRecord {
  const { f: _format, ...record } = deviceSchema.parse(decodeValue(bytes));
  return record;
}

export function decodeReadingValue(bytes: Uint8Array): StoredReading {
  return decodeValue(bytes) as StoredReading;
}

export function decodeDeadLetter(bytes: Uint8Array): DeadLetter {
  const letter = decodeValue(bytes) as DeadLetter;
  // Letters written before payloads were cut to a bound kept them whole.
  letter.payloadBytes ??= letter.payload.length;
  return letter;
}

/**
 * An outbox entry names the reading it forwards — its device and time; with the entry's own key, the arrival sequence,
 * that is the reading's key — and the bytes that reading takes, for the backlog budget, instead of holding a copy: the
 * copy was about a fifth of the bytes written per reading. Entries written before that hold the reading itself, and
 * are still read.
 */
export type OutboxValue = { deviceId: string; ts: number; readingBytes: number } | { reading: StoredReading };

export function encodeOutboxRef(deviceId: string, ts: number, readingBytes: number): Uint8Array {
  return cborEncoder.encode([deviceId, ts, readingBytes]);
}

export function decodeOutboxValue(bytes: Uint8Array): OutboxValue {
  const value = decodeValue(bytes);
  if (Array.isArray(value)) {
    const [deviceId, ts, readingBytes] = value as unknown[];
    if (typeof deviceId === 'string' && typeof ts === 'number' && typeof readingBytes === 'number') {
      return { deviceId, ts, readingBytes };
    }
  }
  return { reading: value as StoredReading };
}
