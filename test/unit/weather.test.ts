import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateReading } from '../../gateway/domain/wire.js';
import { createRng } from '../../device-sim/random.js';
import { createStation, initialWeather, stepWeather } from '../../device-sim/weather.js';

function simulate(seed: string, steps: number, dtMs: number, start = Date.UTC(2026, 0, 1)) {
  const rng = createRng(seed);
  const station = createStation(rng);
  let state = initialWeather(rng);
  const out = [];
  for (let i = 1; i <= steps; i++) {
    const step = stepWeather(station, state, start + i * dtMs, dtMs, rng);
    state = step.state;
    out.push(step.m);
  }
  return { station, out };
}

describe('weather model', () => {
  it('stays inside the wire contract over long random runs', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.constantFrom(1000, 60_000, 600_000),
        fc.integer({ min: 0, max: 2 ** 40 }),
        (seed, dtMs, start) => {
          const { out } = simulate(seed, 500, dtMs, start);
          out.forEach((m, seq) => {
            const r = validateReading({ v: 1, boot: 1, seq, ts: start, m }, 'ws-1');
            expect(r.ok, JSON.stringify(r)).toBe(true);
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('is deterministic by seed and differs between seeds', () => {
    expect(simulate('a', 200, 60_000)).toEqual(simulate('a', 200, 60_000));
    expect(simulate('a', 50, 60_000).out).not.toEqual(simulate('b', 50, 60_000).out);
  });

  it('has a daily temperature cycle and humidity that moves against it', () => {
    const { out } = simulate('cycle', 24 * 60 * 7, 60_000);
    const temps = out.map((m) => m.temp_c);
    const range = Math.max(...temps) - Math.min(...temps);
    expect(range).toBeGreaterThan(4);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const t = mean(temps);
    const h = mean(out.map((m) => m.rh_pct));
    const cov = mean(out.map((m) => (m.temp_c - t) * (m.rh_pct - h)));
    expect(cov).toBeLessThan(0);
    expect(out.some((m) => m.rain_mm > 0)).toBe(true);
    expect(out.some((m) => m.lux === 0) && out.some((m) => m.lux > 10_000)).toBe(true);
  });
});
