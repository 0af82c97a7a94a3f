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
}

export class Backoff {
  readonly #o: BackoffOptions;
  readonly #random: () => number;
  #previous: number;
  #connectedAt: number | null = null;

  constructor(opts: BackoffOptions, random: () => number = Math.random) {
    if (opts.baseMs <= 0 || opts.capMs < opts.baseMs) throw new TypeError('backoff needs 0 < baseMs <= capMs');
    this.#o = opts;
    this.#random = random;
    this.#previous = opts.baseMs;
  }

  /** The delay before the next connection attempt. */
  next(): number {
    const { baseMs, capMs } = this.#o;
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
    if (this.#connectedAt !== null && now - this.#connectedAt >= this.#o.stableMs) this.#previous = this.#o.baseMs;
    this.#connectedAt = null;
  }
}
