/**
 * Per-device sequence deduplication (DESIGN.md "Deduplication"). Pure: state in, verdict and new state out; the
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
   * the window, and a 128-byte typed array's backing store lives outside the V8 heap (≈ 1 µs to copy, against
   * ≈ 0.1 µs here); 32 bits per element keep the copy small for the young-generation GC. The store keeps it as bytes.
   */
  readonly window: readonly number[];
}

export interface DedupState {
  readonly current: EpochState;
  /** The epoch before `current`, kept so that late retries sent before a reboot are still recognised. */
  readonly previous: EpochState | null;
}

/**
 * - new: above everything seen in its epoch (or the first of a new epoch);
 * - late: inside the window and not seen before (out of order; fills a gap);
 * - duplicate: inside the window and seen;
 * - stale: below the window, or from an epoch older than the previous one.
 */
export type Verdict = 'new' | 'late' | 'duplicate' | 'stale';

export interface Classification {
  verdict: Verdict;
  /** The state to keep. The same object as the input when nothing changed (duplicate, stale). */
  state: DedupState;
  /** Change in the count of sequence numbers known to be missing: +gap on a jump, -1 for a late arrival. */
  missingDelta: number;
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
  for (let i = 0; i < bytes.length; i++) window[i >>> 2] = (window[i >>> 2] as number) | ((bytes[i] as number) << ((i & 3) * 8));
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

/**
 * Classifies reading (boot, seq) against a device's state. `windowBits` (W, a multiple of 8) applies to new state;
 * existing epochs keep the window they were created with.
 */
export function classify(state: DedupState | null, boot: number, seq: number, windowBits: number): Classification {
  if (state === null) {
    return { verdict: 'new', state: { current: freshEpoch(boot, seq, windowBits), previous: null }, missingDelta: seq };
  }
  const { current, previous } = state;
  if (boot > current.boot) {
    return { verdict: 'new', state: { current: freshEpoch(boot, seq, windowBits), previous: current }, missingDelta: seq };
  }
  if (boot === current.boot) {
    const r = classifyInEpoch(current, seq);
    return { verdict: r.verdict, state: r.epoch === current ? state : { current: r.epoch, previous }, missingDelta: r.missingDelta };
  }
  if (previous !== null && boot === previous.boot) {
    const r = classifyInEpoch(previous, seq);
    return { verdict: r.verdict, state: r.epoch === previous ? state : { current, previous: r.epoch }, missingDelta: r.missingDelta };
  }
  return { verdict: 'stale', state, missingDelta: 0 };
}
