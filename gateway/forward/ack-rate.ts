/** Readings acknowledged upstream per second, over the last `windowS` seconds: the drain rate behind the ETA. */
export class AckRate {
  readonly #windowS: number;
  /** [second, readings acked in it], oldest first, none older than the window. */
  readonly #seconds: [number, number][] = [];

  constructor(windowS = 10) {
    this.#windowS = windowS;
  }

  count(n: number, nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    const last = this.#seconds.at(-1);
    if (last && last[0] === second) last[1] += n;
    else this.#seconds.push([second, n]);
    while ((this.#seconds[0]?.[0] ?? second) <= second - this.#windowS) this.#seconds.shift();
  }

  perSecond(nowMs: number): number {
    this.count(0, nowMs);
    return this.#seconds.reduce((n, [, c]) => n + c, 0) / this.#windowS;
  }
}
