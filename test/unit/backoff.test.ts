import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backoff } from '../../gateway/forward/backoff.js';

describe('backoff', () => {
  it('stays within [base, min(cap, 3 × previous)]', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 0.999999, noNaN: true }), { minLength: 1, maxLength: 50 }),
        (randoms) => {
          let i = 0;
          const b = new Backoff(
            { baseMs: 100, capMs: 5000, stableMs: 1000 },
            () => randoms[i++ % randoms.length] as number,
          );
          let previous = 100;
          for (let n = 0; n < 50; n++) {
            const d = b.next();
            expect(d).toBeGreaterThanOrEqual(100);
            expect(d).toBeLessThanOrEqual(Math.min(5000, previous * 3));
            previous = d;
          }
        },
      ),
    );
  });

  it('grows to the cap when the random source is high, and holds there', () => {
    const b = new Backoff({ baseMs: 100, capMs: 2000, stableMs: 1000 }, () => 0.999999);
    const delays = Array.from({ length: 8 }, () => b.next());
    expect(delays.slice(0, 3)).toEqual([300, 900, 2000]);
    expect(delays.at(-1)).toBe(2000);
  });

  it('resets only after a connection was stable', () => {
    const b = new Backoff({ baseMs: 100, capMs: 10_000, stableMs: 1000 }, () => 0.999999);
    b.next();
    b.next();
    b.connected(0);
    b.disconnected(999); // flapped: keeps growing
    expect(b.next()).toBe(2700);
    b.connected(5000);
    b.disconnected(6000); // stable for stableMs: back to the start
    expect(b.next()).toBe(300);
  });

  it('without jitter doubles from base to the cap, the same for everyone, and starts again after a stable connection', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 30_000, stableMs: 5000, jitter: false }, () => {
      throw new Error('no randomness without jitter');
    });
    expect(Array.from({ length: 7 }, () => b.next())).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    b.connected(0);
    b.disconnected(5000);
    expect(b.next()).toBe(1000);
  });
});
