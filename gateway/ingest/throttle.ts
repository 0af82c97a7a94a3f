/** At most one log line per key and interval: a device sending garbage ten times a second must not flood the log. */
export class Throttle {
  readonly #last = new Map<string, number>();
  readonly #intervalMs: number;

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Runs `write` unless it ran for `key` less than the interval before `now`. */
  run(key: string, now: number, write: () => void): void {
    const last = this.#last.get(key);
    if (last !== undefined && now - last < this.#intervalMs) return;
    this.#last.set(key, now);
    write();
  }
}
