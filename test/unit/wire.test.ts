import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeReading,
  detectEncoding,
  encodeReading,
  WEATHER_RANGES,
  type Reading,
} from '../../gateway/domain/wire.js';

const MAX = 8192;

// x + 0: both encodings send -0 as 0
const weather = fc.record(
  Object.fromEntries(
    Object.entries(WEATHER_RANGES).map(([k, [lo, hi]]) => [
      k,
      fc.double({ min: lo, max: hi, noNaN: true }).map((x) => x + 0),
    ]),
  ),
  { requiredKeys: ['temp_c'] },
) as fc.Arbitrary<Record<string, number>>;

const validReading: fc.Arbitrary<Reading> = fc.record({
  v: fc.constant(1 as const),
  boot: fc.integer({ min: 0, max: 0xffff_ffff }),
  seq: fc.maxSafeNat(),
  ts: fc.maxSafeNat(),
  m: weather,
});

describe('wire contract', () => {
  it('never throws on arbitrary bytes, and rejects with a code and a reason', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = decodeReading(bytes, 'dev-1', { maxBytes: MAX });
        if (!r.ok) {
          expect(r.code).toMatch(/^GW_/);
          expect(r.reason.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on arbitrary JSON values and arbitrary CBOR-encoded values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const json = Buffer.from(JSON.stringify(value) ?? 'null');
        expect(() => decodeReading(json, 'd', { maxBytes: MAX })).not.toThrow();
        expect(() => decodeReading(encodeReading(value as Reading, 'cbor'), 'd', { maxBytes: MAX })).not.toThrow();
      }),
    );
  });

  it('round-trips every valid reading in CBOR and in JSON', () => {
    fc.assert(
      fc.property(validReading, fc.constantFrom('cbor' as const, 'json' as const), (reading, encoding) => {
        const r = decodeReading(encodeReading(reading, encoding), 'dev-1', { maxBytes: MAX });
        expect(r).toEqual({ ok: true, value: reading, encoding });
      }),
    );
  });

  it('detects the encoding by content type, then by the first byte', () => {
    const cbor = encodeReading({ v: 1, boot: 0, seq: 0, ts: 0, m: { x: 1 } }, 'cbor');
    expect(detectEncoding(cbor)).toBe('cbor');
    expect(detectEncoding(Buffer.from(' \n{"v":1}'))).toBe('json');
    expect(detectEncoding(Buffer.from('{"v":1}'), 'application/cbor')).toBe('cbor');
    expect(detectEncoding(cbor, 'application/json')).toBe('json');
  });

  const base = { v: 1, boot: 1, seq: 2, ts: 3, m: { temp_c: 20 } };
  const cases: [string, unknown, string, RegExp][] = [
    ['wrong version', { ...base, v: 2 }, 'GW_PAYLOAD_INVALID', /^v:/],
    ['negative seq', { ...base, seq: -1 }, 'GW_PAYLOAD_INVALID', /^seq:/],
    ['fractional seq', { ...base, seq: 1.5 }, 'GW_PAYLOAD_INVALID', /^seq:/],
    ['boot above uint32', { ...base, boot: 2 ** 32 }, 'GW_PAYLOAD_INVALID', /^boot:/],
    ['missing ts', { v: 1, boot: 1, seq: 1, m: { temp_c: 1 } }, 'GW_PAYLOAD_INVALID', /^ts:/],
    ['temperature out of range', { ...base, m: { temp_c: 61 } }, 'GW_PAYLOAD_INVALID', /temp_c: out of range/],
    ['humidity out of range', { ...base, m: { rh_pct: -1 } }, 'GW_PAYLOAD_INVALID', /rh_pct: out of range/],
    ['no measurements', { ...base, m: {} }, 'GW_PAYLOAD_INVALID', /at least one measurement/],
    ['non-numeric measurement', { ...base, m: { temp_c: '20' } }, 'GW_PAYLOAD_INVALID', /m\.temp_c/],
    ['unknown field', { ...base, extra: 1 }, 'GW_PAYLOAD_INVALID', /unknown field\(s\) extra/],
    ['id mismatch', { ...base, id: 'other' }, 'GW_DEVICE_ID_MISMATCH', /does not match/],
    ['not an object', [1, 2, 3], 'GW_PAYLOAD_INVALID', /expected object/i],
  ];
  it.each(cases)('rejects %s', (_name, value, code, reason) => {
    for (const encoding of ['json', 'cbor'] as const) {
      const r = decodeReading(encodeReading(value as Reading, encoding), 'dev-1', { maxBytes: MAX });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe(code);
        expect(r.reason).toMatch(reason);
      }
    }
  });

  it('rejects oversize payloads and undecodable bytes', () => {
    const big = decodeReading(Buffer.alloc(MAX + 1, 0x20), 'd', { maxBytes: MAX });
    expect(big).toMatchObject({ ok: false, code: 'GW_PAYLOAD_TOO_LARGE' });
    expect(decodeReading(Buffer.from('{"v":1,'), 'd', { maxBytes: MAX })).toMatchObject({
      ok: false,
      code: 'GW_PAYLOAD_UNDECODABLE',
    });
    expect(decodeReading(Buffer.from([0xbf]), 'd', { maxBytes: MAX })).toMatchObject({
      ok: false,
      code: 'GW_PAYLOAD_UNDECODABLE',
    });
  });
});
