import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classify, windowBytes, windowFromBytes, type DedupState, type Verdict } from '../../gateway/domain/dedup.js';

/** The reference model: a set of seen sequence numbers per epoch, "inside the window" meaning seq > high - W. */
class Model {
  readonly epochs = new Map<number, { seen: Set<number>; high: number }>();
  cur: number | null = null;
  prev: number | null = null;
  constructor(readonly w: number) {}

  classify(boot: number, seq: number): Verdict {
    if (this.cur === null || boot > this.cur) {
      this.prev = this.cur;
      this.cur = boot;
      this.epochs.set(boot, { seen: new Set([seq]), high: seq });
      return 'new';
    }
    if (boot !== this.cur && boot !== this.prev) return 'stale';
    const e = this.epochs.get(boot)!;
    if (seq > e.high) {
      e.high = seq;
      e.seen.add(seq);
      return 'new';
    }
    if (seq <= e.high - this.w) return 'stale';
    if (e.seen.has(seq)) return 'duplicate';
    e.seen.add(seq);
    return 'late';
  }
}

function run(ops: readonly (readonly [number, number])[], w: number) {
  let state: DedupState | null = null;
  const verdicts: Verdict[] = [];
  const missing = new Map<number, number>();
  const stored = new Map<number, number>();
  for (const [boot, seq] of ops) {
    const c = classify(state, boot, seq, w);
    state = c.state;
    verdicts.push(c.verdict);
    missing.set(boot, (missing.get(boot) ?? 0) + c.missingDelta);
    if (c.verdict === 'new' || c.verdict === 'late') stored.set(boot, (stored.get(boot) ?? 0) + 1);
  }
  return { state, verdicts, missing, stored };
}

const op = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 120 }));

describe('dedup', () => {
  it('agrees with the reference model on random sequences', () => {
    fc.assert(
      fc.property(fc.constantFrom(8, 16, 64), fc.array(op, { maxLength: 300 }), (w, ops) => {
        const model = new Model(w);
        const expected = ops.map(([b, s]) => model.classify(b, s));
        expect(run(ops, w).verdicts).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('agrees with the model on mostly increasing streams with retries and reboots', () => {
    const stream = fc.array(
      fc.record({
        reboot: fc.integer({ min: 0, max: 32 }).map((n) => n === 0),
        back: fc.integer({ min: -40, max: 3 }),
      }),
      { maxLength: 400 },
    );
    fc.assert(
      fc.property(fc.constantFrom(16, 32), stream, (w, steps) => {
        let boot = 1;
        let seq = 0;
        const ops: [number, number][] = [];
        for (const s of steps) {
          if (s.reboot) {
            boot++;
            seq = 0;
          }
          // mostly the next seq; sometimes a retry from the past, sometimes from the previous boot
          const target = s.back < 0 ? Math.max(0, seq + s.back) : seq + s.back;
          const b = s.back === -40 && boot > 1 ? boot - 1 : boot;
          ops.push([b, target]);
          if (s.back >= 0) seq = target + 1;
        }
        const model = new Model(w);
        expect(run(ops, w).verdicts).toEqual(ops.map(([b, s]) => model.classify(b, s)));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps missing equal to highSeq + 1 minus what was stored, per tracked epoch', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 300 }), (seqs) => {
        const { state, missing, stored } = run(
          seqs.map((s) => [7, s] as const),
          1024,
        );
        expect(missing.get(7)).toBe(state!.current.highSeq + 1 - (stored.get(7) ?? 0));
      }),
    );
  });

  it('never mutates the state it was given', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 100 }), (ops) => {
        let state: DedupState | null = null;
        for (const [b, s] of ops) {
          const before = state === null ? null : structuredClone(state);
          const next: DedupState = classify(state, b, s, 16).state;
          expect(state).toEqual(before);
          state = next;
        }
      }),
    );
  });

  it('classifies the documented cases', () => {
    const w = 8;
    let s = classify(null, 1, 0, w);
    expect(s).toMatchObject({ verdict: 'new', missingDelta: 0 });
    s = classify(s.state, 1, 3, w);
    expect(s).toMatchObject({ verdict: 'new', missingDelta: 2 });
    s = classify(s.state, 1, 1, w);
    expect(s).toMatchObject({ verdict: 'late', missingDelta: -1 });
    expect(classify(s.state, 1, 1, w)).toMatchObject({ verdict: 'duplicate', missingDelta: 0 });
    s = classify(s.state, 1, 20, w);
    expect(classify(s.state, 1, 12, w).verdict).toBe('stale');
    expect(classify(s.state, 1, 13, w).verdict).toBe('late');
    const rebooted = classify(s.state, 2, 0, w);
    expect(rebooted.verdict).toBe('new');
    expect(classify(rebooted.state, 1, 19, w).verdict).toBe('late');
    expect(classify(rebooted.state, 1, 20, w).verdict).toBe('duplicate');
    const twice = classify(rebooted.state, 3, 0, w);
    expect(classify(twice.state, 1, 19, w).verdict).toBe('stale');
  });

  it('keeps the window as bytes in the stored layout (bit s in byte s >> 3, bit s & 7) and reads it back', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 64 })
          .chain((n) => fc.tuple(fc.constant(n * 8), fc.uniqueArray(fc.nat(100_000), { minLength: 1, maxLength: 50 }))),
        ([w, seqs]) => {
          let state: DedupState | null = null;
          for (const seq of seqs) state = classify(state, 1, seq, w).state;
          const current = (state as DedupState).current;
          const bytes = windowBytes(current);
          expect(bytes.length).toBe(w / 8);
          const high = Math.max(...seqs);
          for (const seq of seqs.filter((x) => x > high - w)) {
            const bit = seq % w;
            expect(((bytes[bit >> 3] as number) >> (bit & 7)) & 1).toBe(1);
          }
          const back = { ...current, ...windowFromBytes(bytes) };
          expect(back).toEqual(current);
          for (const seq of seqs)
            expect(classify({ current: back, previous: null }, 1, seq, w).verdict).toBe(
              classify(state, 1, seq, w).verdict,
            );
        },
      ),
    );
  });
});

/**
 * The reference model with the reset rules: per device the boots' seen sets, the newest trusted time, and a candidate
 * run of untrusted readings; written from the README's rules, not from the implementation.
 */
class ResetModel {
  readonly epochs = new Map<number, { seen: Set<number>; high: number }>();
  cur: number | null = null;
  prev: number | null = null;
  newest = 0;
  cand: { boot: number; seq: number; count: number } | null = null;
  constructor(
    readonly w: number,
    readonly k: number,
    readonly maxSeqJump: number,
    readonly maxBootJump: number,
  ) {}

  #start(boot: number, seq: number, ts: number | null): Verdict {
    if (boot !== this.cur) this.prev = this.cur;
    this.cur = boot;
    this.epochs.set(boot, { seen: new Set([seq]), high: seq });
    return this.#stored(ts, 'new');
  }

  #stored(ts: number | null, v: Verdict): Verdict {
    if (ts !== null) this.newest = Math.max(this.newest, ts);
    this.cand = null;
    return v;
  }

  #untrusted(boot: number, seq: number, ts: number | null, kind: 'stale' | 'jump'): Verdict {
    const c = this.cand;
    const count = c && c.boot === boot && seq > c.seq && seq - c.seq <= this.w ? c.count + 1 : 1;
    if (count < this.k) {
      this.cand = { boot, seq, count };
      return kind;
    }
    if (kind === 'jump' && boot === this.cur) return this.#inEpoch(boot, seq, ts);
    return this.#start(boot, seq, ts);
  }

  #inEpoch(boot: number, seq: number, ts: number | null): Verdict {
    const e = this.epochs.get(boot)!;
    if (seq > e.high) {
      e.high = seq;
      e.seen.add(seq);
      return this.#stored(ts, 'new');
    }
    if (seq <= e.high - this.w) return 'stale';
    if (e.seen.has(seq)) return 'duplicate';
    e.seen.add(seq);
    return this.#stored(ts, 'late');
  }

  classify(boot: number, seq: number, ts: number | null): Verdict {
    if (this.cur === null) return this.#start(boot, seq, ts);
    const newer = ts !== null && ts > this.newest;
    if (boot === this.prev && boot !== this.cur) {
      const e = this.epochs.get(boot)!;
      if (seq > e.high - this.w) return this.#inEpoch(boot, seq, ts);
      return newer ? this.#start(boot, seq, ts) : this.#untrusted(boot, seq, ts, 'stale');
    }
    if (boot > this.cur) {
      if (boot - this.cur > this.maxBootJump || seq > this.maxSeqJump) return this.#untrusted(boot, seq, ts, 'jump');
      return this.#start(boot, seq, ts);
    }
    if (boot === this.cur) {
      const e = this.epochs.get(boot)!;
      if (seq - e.high > this.maxSeqJump) return this.#untrusted(boot, seq, ts, 'jump');
      const inWindow = seq > e.high - this.w;
      if (seq <= e.high && (!inWindow || e.seen.has(seq))) {
        if (newer) return this.#start(boot, seq, ts);
        if (!inWindow) return this.#untrusted(boot, seq, ts, 'stale');
      }
      return this.#inEpoch(boot, seq, ts);
    }
    return newer ? this.#start(boot, seq, ts) : this.#untrusted(boot, seq, ts, 'stale');
  }
}

describe('dedup with reset rules', () => {
  const step = fc.tuple(
    fc.integer({ min: 0, max: 4 }),
    fc.integer({ min: 0, max: 60 }),
    fc.option(fc.integer({ min: 1, max: 100 }), { nil: null }),
  );

  it('agrees with the reference model, resets and far jumps included', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(8, 16),
        fc.integer({ min: 1, max: 4 }),
        fc.array(step, { maxLength: 300 }),
        (w, k, ops) => {
          const rules = { confirmations: k, maxSeqJump: 20, maxBootJump: 2 };
          const model = new ResetModel(w, k, rules.maxSeqJump, rules.maxBootJump);
          let state: DedupState | null = null;
          for (const [boot, seq, ts] of ops) {
            const c = classify(state, boot, seq, w, { ...rules, ts });
            expect(c.verdict).toBe(model.classify(boot, seq, ts));
            state = c.state;
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('never silences a device: after any history, the third consecutive reading of another boot is stored', () => {
    fc.assert(
      fc.property(
        fc.array(step, { maxLength: 100 }),
        fc.integer({ min: 5, max: 0xffff_ffff }),
        fc.nat({ max: 1000 }),
        (ops, boot, start) => {
          const rules = { confirmations: 3, maxSeqJump: 20, maxBootJump: 2, ts: null };
          let state: DedupState | null = null;
          for (const [b, s, ts] of ops) state = classify(state, b, s, 16, { ...rules, ts }).state;
          const verdicts = [0, 1, 2, 3, 4].map((i) => {
            const c = classify(state, boot, start + i, 16, rules);
            state = c.state;
            return c.verdict;
          });
          expect(verdicts.slice(2).every((v) => v === 'new')).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});
