import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Activity } from '../../gateway/domain/activity.js';
import { Downsampler } from '../../gateway/domain/series.js';

describe('Downsampler', () => {
  it('gives each bucket the min, mean and max of the readings in it, whatever the order they come in', () => {
    const point = fc.record({
      ts: fc.integer({ min: -500, max: 10_500 }),
      v: fc.double({ min: -1e6, max: 1e6, noNaN: true }),
    });
    fc.assert(
      fc.property(fc.array(point, { maxLength: 300 }), fc.integer({ min: 1, max: 3000 }), (points, step) => {
        const query = { from: 0, to: 10_000, step };
        const series = new Downsampler(query);
        for (const p of points) series.add(p.ts, { x: p.v, y: 1 });
        const inRange = points.filter((p) => p.ts >= 0 && p.ts < 10_000);
        const expected = new Map<number, number[]>();
        for (const p of inRange) {
          const t = Math.floor(p.ts / step) * step;
          expected.set(t, [...(expected.get(t) ?? []), p.v]);
        }
        const buckets = series.result();
        expect(buckets.map((b) => b.t)).toEqual([...expected.keys()].sort((a, b) => a - b));
        expect(buckets.length).toBeLessThanOrEqual(Downsampler.buckets(query));
        for (const b of buckets) {
          const values = expected.get(b.t) as number[];
          const [min, mean, max] = b.m.x as [number, number, number];
          expect(b.n).toBe(values.length);
          expect(min).toBe(Math.min(...values));
          expect(max).toBe(Math.max(...values));
          expect(mean).toBeCloseTo(values.reduce((a, v) => a + v, 0) / values.length, 3);
          expect(b.m.y).toEqual([1, 1, 1]);
        }
      }),
    );
  });
});

describe('Activity', () => {
  it('calls a station silent after three of its usual intervals, the median gap, not thrown by one late reading', () => {
    const a = new Activity(null, 600_000);
    expect(a.view('s', 0, 1000)).toEqual({ usualIntervalMs: null, silent: false, silentAfterMs: 600_000 });
    for (const rx of [0, 5000, 10_000, 15_000, 60_000, 65_000]) a.seen('s', rx);
    expect(a.usualIntervalMs('s')).toBe(5000);
    expect(a.view('s', 65_000, 65_000 + 15_000).silent).toBe(false);
    expect(a.view('s', 65_000, 65_000 + 15_001)).toEqual({
      usualIntervalMs: 5000,
      silent: true,
      silentAfterMs: 15_000,
    });
  });

  it('waits at least 10 s for a station that sends several times a second', () => {
    const a = new Activity(null, 600_000);
    for (const rx of [0, 300, 600, 900]) a.seen('s', rx);
    expect(a.view('s', 900, 900 + 10_000)).toEqual({ usualIntervalMs: 300, silent: false, silentAfterMs: 10_000 });
    expect(a.view('s', 900, 900 + 10_001).silent).toBe(true);
  });

  it('uses ui.silentAfterMs when set, and ignores readings that arrive out of order', () => {
    const a = new Activity(2000, 600_000);
    for (const rx of [10_000, 4000, 20_000]) a.seen('s', rx);
    expect(a.usualIntervalMs('s')).toBe(10_000);
    expect(a.view('s', 20_000, 22_001)).toEqual({ usualIntervalMs: 10_000, silent: true, silentAfterMs: 2000 });
  });
});
