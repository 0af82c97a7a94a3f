/**
 * Per-device sequence deduplication (docs/architecture.md, "Deduplication"). Pure: state in, verdict and new state out; the
 * input state is never mutated, so a caller can keep the last durable state and roll back to it.
 *
 * An epoch is one boot of a device. Its window is a ring of W bits: bit (s mod W) says whether seq s was seen, and it
 * is meaningful for s in (highSeq - W, highSeq]. Memory per epoch is W/8 bytes; every lookup is O(1) (a jump clears at
 * most W bits).
 */

export interface EpochState {
  readonly boot: number;
  readonly highSeq: number;
  /** W: how many sequence numbers the window covers. */
  readonly bits: number;
  /**
   * The W bits, 32 per element, as small integers in a plain array. Not a Uint8Array: a new or late reading copies
   * the window, and a typed array's backing store lives outside the V8 heap, which makes that copy many times dearer
   * (docs/benchmarks.md, "Changes"); 32 bits per element keep the copy small for the young-generation GC. The store
   * keeps it as bytes.
   */
  readonly window: readonly number[];
}

/** Readings that would move the device somewhere untrusted (an older boot, a far jump), waiting for confirmation. */
export interface Candidate {
  readonly boot: number;
  readonly seq: number;
  /** Consecutive readings seen so far that continue this boot (each seq above the last, within the window). */
  readonly count: number;
}

export interface DedupState {
  readonly current: EpochState;
  /** The epoch before `current`, kept so that late retries sent before a reboot are still recognised. */
  readonly previous: EpochState | null;
  /** The newest device time (ms) among the readings stored, counting only times the device's clock gave; 0 if none. */
  readonly newestTs?: number;
  readonly candidate?: Candidate | null;
}

/** When a device may start over (README: "Counter resets"). */
export interface ResetRules {
  /** The reading's device time, or null when the device's clock is not trusted for it (see clock.ts). */
  readonly ts: number | null;
  /** Consecutive readings of one untrusted boot (or past one far jump) after which they are believed. */
  readonly confirmations: number;
  /** A seq further than this above the epoch's highest (or above 0 in a new boot) is a far jump. */
  readonly maxSeqJump: number;
  /** A boot further than this above the current one is a far jump. */
  readonly maxBootJump: number;
}

/**
 * - new: above everything seen in its epoch (or the first of a new epoch);
 * - late: inside the window and not seen before (out of order; fills a gap);
 * - duplicate: inside the window and seen;
 * - stale: below the window, or from an epoch older than the previous one (not stored: not provably a duplicate either,
 *   so the caller keeps it elsewhere);
 * - jump: far above the current epoch and not (yet) confirmed (not stored, kept elsewhere like stale).
 */
export type Verdict = 'new' | 'late' | 'duplicate' | 'stale' | 'jump';

export interface Classification {
  verdict: Verdict;
  /** The state to keep. The same object as the input when nothing changed (duplicate, stale). */
  state: DedupState;
  /** Change in the count of sequence numbers known to be missing: +gap on a jump, -1 for a late arrival. */
  missingDelta: number;
  /** The reading started a new epoch at a lower boot than the current one: the device's counter was reset. */
  reset: boolean;
}

function hasBit(window: readonly number[], index: number): boolean {
  return ((window[index >>> 5] as number) & (1 << (index & 31))) !== 0;
}

function setBit(window: number[], index: number): void {
  window[index >>> 5] = (window[index >>> 5] as number) | (1 << (index & 31));
}

function clearBit(window: number[], index: number): void {
  window[index >>> 5] = (window[index >>> 5] as number) & ~(1 << (index & 31));
}

const emptyWindow = (bits: number): number[] => new Array<number>(Math.ceil(bits / 32)).fill(0);

function freshEpoch(boot: number, seq: number, windowBits: number): EpochState {
  const window = emptyWindow(windowBits);
  setBit(window, seq % windowBits);
  return { boot, highSeq: seq, bits: windowBits, window };
}

/** The window as bytes (bit s in byte s >> 3, bit s & 7), the way the store keeps it. */
export function windowBytes(epoch: EpochState): Uint8Array {
  const bytes = new Uint8Array(epoch.bits / 8);
  for (let i = 0; i < bytes.length; i++) bytes[i] = ((epoch.window[i >>> 2] as number) >>> ((i & 3) * 8)) & 0xff;
  return bytes;
}

/** The inverse of windowBytes: W is 8 bits per byte. */
export function windowFromBytes(bytes: Uint8Array): Pick<EpochState, 'bits' | 'window'> {
  const bits = bytes.length * 8;
  const window = emptyWindow(bits);
  for (let i = 0; i < bytes.length; i++)
    window[i >>> 2] = (window[i >>> 2] as number) | ((bytes[i] as number) << ((i & 3) * 8));
  return { bits, window };
}

type EpochResult = { verdict: Verdict; epoch: EpochState; missingDelta: number };

function classifyInEpoch(epoch: EpochState, seq: number): EpochResult {
  const { bits } = epoch;
  if (seq > epoch.highSeq) {
    const jump = seq - epoch.highSeq;
    const window = jump >= bits ? emptyWindow(bits) : epoch.window.slice();
    if (jump < bits) {
      for (let s = epoch.highSeq + 1; s < seq; s++) clearBit(window, s % bits);
    }
    setBit(window, seq % bits);
    return { verdict: 'new', epoch: { boot: epoch.boot, highSeq: seq, bits, window }, missingDelta: jump - 1 };
  }
  if (seq <= epoch.highSeq - bits) return { verdict: 'stale', epoch, missingDelta: 0 };
  if (hasBit(epoch.window, seq % bits)) return { verdict: 'duplicate', epoch, missingDelta: 0 };
  const window = epoch.window.slice();
  setBit(window, seq % bits);
  return { verdict: 'late', epoch: { boot: epoch.boot, highSeq: epoch.highSeq, bits, window }, missingDelta: -1 };
}

/** No resets: an older boot is always stale, and any jump ahead is believed at once. */
export const NO_RESETS: ResetRules = Object.freeze({
  ts: null,
  confirmations: Infinity,
  maxSeqJump: Infinity,
  maxBootJump: Infinity,
});

/** A reading stored from this state: it may raise the newest device time and ends any candidate. */
function stored(state: DedupState, rules: ResetRules): DedupState {
  const { ts } = rules;
  const newestTs = ts !== null && ts > (state.newestTs ?? 0) ? ts : state.newestTs;
  if (newestTs === state.newestTs && !state.candidate) return state;
  return {
    current: state.current,
    previous: state.previous,
    ...(newestTs === undefined ? {} : { newestTs }),
    candidate: null,
  };
}

/** A new epoch at (boot, seq). Not above the current boot, it is a reset; the same boot then replaces the current epoch. */
function startEpoch(
  state: DedupState,
  boot: number,
  seq: number,
  windowBits: number,
  rules: ResetRules,
): Classification {
  const previous = boot === state.current.boot ? state.previous : state.current;
  const next = stored({ current: freshEpoch(boot, seq, windowBits), previous, newestTs: state.newestTs ?? 0 }, rules);
  return { verdict: 'new', state: next, missingDelta: seq, reset: boot <= state.current.boot };
}

/**
 * An untrusted reading: believed (a new epoch) once it is the `confirmations`-th consecutive reading of its boot,
 * else it becomes or extends the candidate and is classified `untrusted`.
 */
function confirm(
  state: DedupState,
  boot: number,
  seq: number,
  windowBits: number,
  rules: ResetRules,
  untrusted: 'stale' | 'jump',
): Classification {
  const c = state.candidate;
  const continues = c != null && c.boot === boot && seq > c.seq && seq - c.seq <= windowBits;
  const count = continues ? c.count + 1 : 1;
  if (count >= rules.confirmations) {
    if (untrusted === 'stale' || boot !== state.current.boot) return startEpoch(state, boot, seq, windowBits, rules);
    const r = classifyInEpoch(state.current, seq);
    return {
      verdict: r.verdict,
      state: stored({ ...state, current: r.epoch }, rules),
      missingDelta: r.missingDelta,
      reset: false,
    };
  }
  return { verdict: untrusted, state: { ...state, candidate: { boot, seq, count } }, missingDelta: 0, reset: false };
}

/**
 * Classifies reading (boot, seq) against a device's state. `windowBits` (W, a multiple of 8) applies to new state;
 * existing epochs keep the window they were created with. `rules` say when a device whose counter went back starts
 * over, and when a far jump ahead is believed.
 */
export function classify(
  state: DedupState | null,
  boot: number,
  seq: number,
  windowBits: number,
  rules: ResetRules = NO_RESETS,
): Classification {
  if (state === null) {
    return {
      verdict: 'new',
      state: stored({ current: freshEpoch(boot, seq, windowBits), previous: null, newestTs: 0 }, rules),
      missingDelta: seq,
      reset: false,
    };
  }
  const { current, previous } = state;
  const newer = rules.ts !== null && rules.ts > (state.newestTs ?? 0);
  // The previous epoch first: after a reset it can be above the current one.
  if (previous !== null && boot === previous.boot && boot !== current.boot) {
    const r = classifyInEpoch(previous, seq);
    if (r.verdict === 'stale')
      return newer
        ? startEpoch(state, boot, seq, windowBits, rules)
        : confirm(state, boot, seq, windowBits, rules, 'stale');
    if (r.epoch === previous) return { verdict: r.verdict, state, missingDelta: 0, reset: false };
    return {
      verdict: r.verdict,
      state: stored({ ...state, previous: r.epoch }, rules),
      missingDelta: r.missingDelta,
      reset: false,
    };
  }
  if (boot > current.boot) {
    if (boot - current.boot > rules.maxBootJump || seq > rules.maxSeqJump)
      return confirm(state, boot, seq, windowBits, rules, 'jump');
    return startEpoch(state, boot, seq, windowBits, rules);
  }
  if (boot === current.boot) {
    if (seq - current.highSeq > rules.maxSeqJump) return confirm(state, boot, seq, windowBits, rules, 'jump');
    const r = classifyInEpoch(current, seq);
    // Newer than every reading stored, by the device's own clock: not a copy of any of them, so the device started
    // its sequence over without a new boot number.
    if ((r.verdict === 'duplicate' || r.verdict === 'stale') && newer)
      return startEpoch(state, boot, seq, windowBits, rules);
    if (r.verdict === 'stale') return confirm(state, boot, seq, windowBits, rules, 'stale');
    if (r.epoch === current) return { verdict: r.verdict, state, missingDelta: 0, reset: false };
    return {
      verdict: r.verdict,
      state: stored({ ...state, current: r.epoch }, rules),
      missingDelta: r.missingDelta,
      reset: false,
    };
  }
  // An older boot: a late retry from before a reboot, or a device whose counter went back (reflashed, flash erased, a
  // replacement board). Its own clock, when trusted, tells them apart: a retry is older than what is stored.
  return newer
    ? startEpoch(state, boot, seq, windowBits, rules)
    : confirm(state, boot, seq, windowBits, rules, 'stale');
}
