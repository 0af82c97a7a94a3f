/**
 * The on-disk value format: CBOR, with a format tag on device records so that a later release can migrate them.
 * Device records are validated when loaded; they decide what gets acked, so a corrupt one must not be trusted.
 */
import { z } from 'zod';
import { cborDecoder, cborEncoder } from '../domain/codec.js';
import { windowBytes, windowFromBytes, type EpochState } from '../domain/dedup.js';
import type { DeadLetter, DeviceRecord, StoredReading } from '../domain/model.js';

export const encodeValue = (value: unknown): Uint8Array => cborEncoder.encode(value);
export const decodeValue = (bytes: Uint8Array): unknown => cborDecoder.decode(bytes);

const DEVICE_FORMAT = 1;

const count = z.number().int();
const counters = z.strictObject({
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
// On disk the dedup window is a byte string; in memory 32-bit words (see EpochState).
const epoch = z
  .strictObject({ boot: count, highSeq: count, window: z.instanceof(Uint8Array) })
  .transform(({ boot, highSeq, window }) => ({ boot, highSeq, ...windowFromBytes(window) }));
const deviceSchema = z.strictObject({
  f: z.literal(DEVICE_FORMAT),
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

const epochBytes = (e: EpochState) => ({ boot: e.boot, highSeq: e.highSeq, window: windowBytes(e) });

export function encodeDevice(record: DeviceRecord): Uint8Array {
  const { dedup } = record;
  return cborEncoder.encode({
    f: DEVICE_FORMAT,
    ...record,
    dedup: dedup && {
      current: epochBytes(dedup.current),
      previous: dedup.previous && epochBytes(dedup.previous),
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
