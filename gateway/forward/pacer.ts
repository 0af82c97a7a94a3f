/** A token bucket for the backlog: `rate` entries a second, bursts of at most one second's worth. */
export class Pacer {
  readonly #rate: number;
  readonly #now: () => number;
  #tokens = 0;
  #at: number;

  constructor(rate: number, now: () => number) {
    this.#rate = rate;
    this.#now = now;
    this.#at = now();
  }

  /** Whole entries that may go now. */
  available(): number {
    const t = this.#now();
    this.#tokens = Math.min(this.#rate, this.#tokens + ((t - this.#at) / 1000) * this.#rate);
    this.#at = t;
    return Math.floor(this.#tokens);
  }

  take(n: number): void {
    this.#tokens -= n;
  }

  /** How long until the next entry may go, when none may now. */
  get retryMs(): number {
    return Math.ceil(1000 / this.#rate);
  }
}
