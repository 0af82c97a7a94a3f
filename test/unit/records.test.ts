import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cborEncoder } from '../../gateway/domain/codec.js';
import { windowBytes, windowFromBytes } from '../../gateway/domain/dedup.js';
import { COUNTER_NAMES, type Counters, type DeviceRecord, zeroCounters } from '../../gateway/domain/model.js';
import { decodeDevice, decodeOutboxValue, encodeDevice, encodeOutboxRef } from '../../gateway/store/records.js';

const epochOf = (boot: number, highSeq: number, bytes: Uint8Array) => ({ boot, highSeq, ...windowFromBytes(bytes) });

function record(window: Uint8Array, counters: Counters[]): DeviceRecord {
  return {
    id: 'ws-1',
    dedup: {
      current: epochOf(3, 5000, window),
      previous: epochOf(2, 77, window.slice().reverse()),
      newestTs: 1_780_000_000_000,
      candidate: null,
    },
    foreign: null,
    lastSeen: 1_780_000_000_123,
    counters: counters as unknown as DeviceRecord['counters'],
    bootResets: 1,
  };
}

/** A window as devices make it: mostly received (0xff), some gaps, or anything at all. */
const window = fc.oneof(
  fc.uint8Array({ minLength: 128, maxLength: 128 }),
  fc.array(fc.nat(1023), { maxLength: 20 }).map((gaps) => {
    const bytes = new Uint8Array(128).fill(0xff);
    for (const g of gaps) bytes[g >> 3] = (bytes[g >> 3] as number) & ~(1 << (g & 7));
    return bytes;
  }),
);
const counters = fc
  .array(fc.nat(), { minLength: 8, maxLength: 8 })
  .map((values) => Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, values[i]])) as Counters);

describe('device records on disk', () => {
  it('decode to what was encoded, whatever the window and counters', () => {
    fc.assert(
      fc.property(window, fc.tuple(counters, counters, counters), (w, c) => {
        const r = record(w, c);
        const back = decodeDevice(encodeDevice(r));
        expect(back.counters).toEqual(r.counters);
        expect(windowBytes(back.dedup!.current)).toEqual(w);
        expect(windowBytes(back.dedup!.previous!)).toEqual(w.slice().reverse());
        expect({ ...back, dedup: null, counters: null }).toEqual({ ...r, dedup: null, counters: null });
      }),
    );
  });

  it('takes less than half of format 1 (495 bytes in the 0.1.0 fixture) for a device that loses nothing', () => {
    const full = new Uint8Array(128).fill(0xff);
    const r = record(full, [zeroCounters(), { ...zeroCounters(), received: 100_000, stored: 99_000 }, zeroCounters()]);
    const size = encodeDevice({ ...r, dedup: { ...r.dedup!, previous: null } }).byteLength;
    expect(size).toBeLessThan(200);
  });

  it('still reads format 1 records (counters by name, the window as bytes)', () => {
    const w = new Uint8Array(128).fill(0xf0);
    const v1 = cborEncoder.encode({
      f: 1,
      id: 'old',
      dedup: { current: { boot: 1, highSeq: 9, window: w }, previous: null, newestTs: 5, candidate: null },
      foreign: null,
      lastSeen: 7,
      counters: [
        { received: 1, stored: 1, duplicate: 0, stale: 0, missing: 0, late: 0, rejected: 0 },
        zeroCounters(),
        zeroCounters(),
      ],
      bootResets: 0,
    });
    const r = decodeDevice(v1);
    expect(r.counters[0]).toEqual({ ...zeroCounters(), received: 1, stored: 1 });
    expect(windowBytes(r.dedup!.current)).toEqual(w);
  });
});

describe('outbox values on disk', () => {
  it('a reference decodes to what was encoded; a copy written by 0.1.0 still decodes as the reading', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.nat(), fc.nat(), (deviceId, ts, readingBytes) => {
        expect(decodeOutboxValue(encodeOutboxRef(deviceId, ts, readingBytes))).toEqual({ deviceId, ts, readingBytes });
      }),
    );
    const reading = { deviceId: 'ws-1', seq: 4, ts: 1_780_000_000_000, rx: 1_780_000_000_100, qos: 1, m: { t: 21.5 } };
    expect(decodeOutboxValue(cborEncoder.encode(reading))).toEqual({ reading });
  });
});
