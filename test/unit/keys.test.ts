import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deviceRange, readingKey } from '../../gateway/store/keys.js';

const id = fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/);

describe('keys', () => {
  it('sorts reading keys by device, then time, then arrival', () => {
    fc.assert(
      fc.property(id, fc.maxSafeNat(), fc.maxSafeNat(), fc.maxSafeNat(), fc.maxSafeNat(), (d, t1, t2, g1, g2) => {
        const a = readingKey(d, t1, g1);
        const b = readingKey(d, t2, g2);
        const expected = t1 !== t2 ? Math.sign(t1 - t2) : Math.sign(g1 - g2);
        expect(Math.sign(a < b ? -1 : a > b ? 1 : 0)).toBe(expected);
      }),
    );
  });

  it("keeps one device's range free of every other device's keys", () => {
    fc.assert(
      fc.property(id, id, fc.maxSafeNat(), fc.maxSafeNat(), (d1, d2, ts, g) => {
        const key = readingKey(d2, ts, g);
        const r = deviceRange(d1);
        expect(key >= r.gte && key < r.lt).toBe(d1 === d2);
      }),
    );
  });

  it('includes both ends of a time range', () => {
    const r = deviceRange('d', 10, 20);
    expect(readingKey('d', 10, 0) >= r.gte).toBe(true);
    expect(readingKey('d', 20, 2 ** 40) < r.lt).toBe(true);
    expect(readingKey('d', 21, 0) < r.lt).toBe(false);
    expect(readingKey('d', 9, 2 ** 40) >= r.gte).toBe(false);
  });
});
