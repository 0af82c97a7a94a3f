/**
 * Reconnect delays: exponential backoff with decorrelated jitter (as in Mosquitto's bridge__backoff_step and AWS's
 * "Exponential Backoff And Jitter"): next = min(cap, uniform(base, 3 × previous)). The delay returns to base only once
 * a connection has stayed up for `stableMs`, so a link that flaps right after connecting keeps backing off.
 * Pure apart from the injected random source.
 */

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  stableMs: number;
  /**
   * false: plain doubling (base, 2 × base, …, cap) with no randomness, so gateways cut off together retry together.
   * Only for measuring what the jitter buys (npm run fleet, docs/scale.md).
   */
  jitter?: boolean;
}

export class Backoff {
  readonly #o: BackoffOptions;
  readonly #random: () => number;
  #previous: number;
  #connectedAt: number | null = null;
  /** Without jitter: a delay was handed out since the last reset, so the next one doubles it. */
  #doubled = false;

  constructor(opts: BackoffOptions, random: () => number = Math.random) {
    if (opts.baseMs <= 0 || opts.capMs < opts.baseMs) throw new TypeError('backoff needs 0 < baseMs <= capMs');
    this.#o = opts;
    this.#random = random;
    this.#previous = opts.baseMs;
  }

  /** The delay before the next connection attempt. */
  next(): number {
    const { baseMs, capMs } = this.#o;
    if (this.#o.jitter === false) {
      const delay = this.#doubled ? Math.min(capMs, this.#previous * 2) : baseMs;
      this.#doubled = true;
      this.#previous = delay;
      return delay;
    }
    const upper = Math.min(capMs, this.#previous * 3);
    const delay = Math.round(Math.min(capMs, baseMs + this.#random() * (upper - baseMs)));
    this.#previous = delay;
    return delay;
  }

  connected(now: number): void {
    this.#connectedAt = now;
  }

  /** Call when a connection ends: resets the delay if the connection had been stable. */
  disconnected(now: number): void {
    if (this.#connectedAt !== null && now - this.#connectedAt >= this.#o.stableMs) {
      this.#previous = this.#o.baseMs;
      this.#doubled = false;
    }
    this.#connectedAt = null;
  }
}
