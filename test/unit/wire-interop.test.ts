/**
 * Payloads as other stacks write them: hex fixtures from Python's cbor2 and RFC 8949 Appendix A, an independent CBOR
 * encoder (cborg, which writes the smallest integer and float forms as device libraries do), and JSON as other
 * serializers format it. None of these bytes come from cbor-x, the gateway's own decoder.
 */
import { readFileSync } from 'node:fs';
import { encode as cborg } from 'cborg';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeReading, encodeReading, WEATHER_RANGES, type Reading } from '../../gateway/domain/wire.js';

const MAX = 8192;
interface Fixture {
  name: string;
  hex: string;
  expect?: Reading;
  rejectPath?: string;
  rejectCode?: string;
}
const fixtures = (file: string): Fixture[] =>
  JSON.parse(readFileSync(new URL(`../fixtures/wire/${file}`, import.meta.url), 'utf8')) as Fixture[];

describe('CBOR from other encoders', () => {
  const all = [...fixtures('cbor2.json'), ...fixtures('rfc8949.json')];
  it.each(all.filter((f) => f.expect).map((f) => [f.name, f] as const))('decodes %s', (_name, f) => {
    expect(decodeReading(Buffer.from(f.hex, 'hex'), 'dev-1', { maxBytes: MAX })).toEqual({
      ok: true,
      value: f.expect,
      encoding: 'cbor',
    });
  });

  it.each(all.filter((f) => f.rejectPath).map((f) => [f.name, f] as const))(
    'rejects %s, naming the field',
    (_name, f) => {
      const r = decodeReading(Buffer.from(f.hex, 'hex'), 'dev-1', { maxBytes: MAX });
      expect(r).toMatchObject({ ok: false, code: 'GW_PAYLOAD_INVALID' });
      if (!r.ok) expect(r.reason).toMatch(new RegExp(`^${f.rejectPath!.replace('.', '\\.')}: `));
    },
  );

  it.each(all.filter((f) => f.rejectCode).map((f) => [f.name, f] as const))('rejects %s with its code', (_name, f) => {
    expect(decodeReading(Buffer.from(f.hex, 'hex'), 'dev-1', { maxBytes: MAX })).toMatchObject({
      ok: false,
      code: f.rejectCode,
    });
  });

  it('says why an integer beyond 53 bits is refused', () => {
    const r = decodeReading(cborg({ v: 1, boot: 1, seq: 2n ** 60n, ts: 1732600000000, m: { temp_c: 1 } }), 'd', {
      maxBytes: MAX,
    });
    expect(r).toMatchObject({ ok: false, reason: 'seq: integer 1152921504606846976 is beyond ±(2^53 − 1)' });
  });

  // Measurements as a device writes them: integers where the value is whole, the smallest float otherwise.
  const measurement = (lo: number, hi: number) =>
    fc.oneof(
      fc.integer({ min: Math.ceil(lo), max: Math.floor(hi) }),
      fc.double({ min: lo, max: hi, noNaN: true, noDefaultInfinity: true }).map((x) => x + 0),
    );
  const weather = fc.record(
    Object.fromEntries(Object.entries(WEATHER_RANGES).map(([k, [lo, hi]]) => [k, measurement(lo, hi)])),
    {
      requiredKeys: ['temp_c'],
    },
  ) as fc.Arbitrary<Record<string, number>>;
  const reading: fc.Arbitrary<Reading> = fc.record({
    v: fc.constant(1 as const),
    boot: fc.nat({ max: 0xffff_ffff }),
    seq: fc.maxSafeNat(),
    ts: fc.maxSafeNat(),
    m: weather,
  });

  it('decodes every valid reading cborg writes, field for field, in any key order', () => {
    fc.assert(
      fc.property(reading, fc.boolean(), (r, reverse) => {
        const ordered = reverse ? Object.fromEntries(Object.entries(r).reverse()) : r;
        const bytes = cborg(ordered, { float64: false });
        expect(decodeReading(bytes, 'dev-1', { maxBytes: MAX })).toEqual({ ok: true, value: r, encoding: 'cbor' });
      }),
      { numRuns: 1000 },
    );
  });
});

describe("the simulator's device-library encoding", () => {
  it('writes a millisecond ts as a uint64, as device libraries do, and the gateway reads it back', () => {
    const r: Reading = { v: 1, boot: 2, seq: 7, ts: 1732600000000, m: { temp_c: 21.5 } };
    const bytes = encodeReading(r, 'cbor-device');
    expect(bytes.includes(Buffer.from('1b000001936701ee00', 'hex'))).toBe(true);
    expect(decodeReading(bytes, 'd', { maxBytes: MAX })).toEqual({ ok: true, value: r, encoding: 'cbor' });
  });
});

describe('JSON as other serializers write it', () => {
  const expected = { v: 1, boot: 3, seq: 42, ts: 1732600000000, m: { temp_c: 21.5, rh_pct: 48 } };
  const forms: [string, string | Buffer][] = [
    ['Python json.dumps(indent=2): newlines and indentation', JSON.stringify(expected, null, 2)],
    [
      'ArduinoJson serializeJson: key order of the sketch',
      '{"m":{"rh_pct":48,"temp_c":21.5},"ts":1732600000000,"seq":42,"boot":3,"v":1}',
    ],
    [
      'whole numbers written as floats (1.0, 48.0)',
      '{"v":1.0,"boot":3.0,"seq":42.0,"ts":1732600000000.0,"m":{"temp_c":21.5,"rh_pct":48.0}}',
    ],
    [
      'exponents (1.7326E12, 2.15e1)',
      '{"v":1,"boot":3,"seq":4.2e1,"ts":1.7326E12,"m":{"temp_c":2.15e1,"rh_pct":4.8E+1}}',
    ],
    [
      '.NET / PowerShell: a UTF-8 byte order mark and CRLF',
      Buffer.concat([
        Buffer.from([0xef, 0xbb, 0xbf]),
        Buffer.from('{\r\n"v":1,"boot":3,"seq":42,"ts":1732600000000,"m":{"temp_c":21.5,"rh_pct":48}}\r\n'),
      ]),
    ],
  ];
  it.each(forms)('decodes %s', (_name, text) => {
    expect(decodeReading(Buffer.from(text), 'dev-1', { maxBytes: MAX })).toEqual({
      ok: true,
      value: expected,
      encoding: 'json',
    });
  });
});
