/**
 * Publishes still under way, by the counter Aedes gave them, and the emits held back behind them (aedes-internals.ts
 * `orderRouting` says why routed packets must reach mqemitter in counter order). Pure bookkeeping, no Aedes in it.
 */
/** Counters are registered in increasing order, so the first one in the set is the lowest. */
export class EmitOrder {
  readonly #underway = new Set<number>();
  #held: { counter: number; emit: () => void }[] = [];

  /** A publish numbered `counter` started. */
  begin(counter: number): void {
    this.#underway.add(counter);
  }

  /** Emits now or once every publish numbered before `counter` is out of the way. */
  emit(counter: number, emit: () => void): void {
    if (!this.#underway.has(counter)) {
      emit();
      return;
    }
    if (this.#lowest() === counter) {
      this.#underway.delete(counter);
      emit();
      this.#release();
      return;
    }
    const at = this.#held.findIndex((h) => h.counter > counter);
    if (at < 0) this.#held.push({ counter, emit });
    else this.#held.splice(at, 0, { counter, emit });
  }

  /** The publish numbered `counter` ended, emitted or not (a failed queue or retained write ends it unemitted). */
  end(counter: number): void {
    if (this.#underway.delete(counter)) this.#release();
  }

  /** Publishes under way and emits held back, for tests. */
  get size(): { underway: number; held: number } {
    return { underway: this.#underway.size, held: this.#held.length };
  }

  #lowest(): number | undefined {
    for (const counter of this.#underway) return counter;
    return undefined;
  }

  #release(): void {
    while (this.#held.length > 0) {
      const next = this.#held[0] as { counter: number; emit: () => void };
      if (this.#lowest() !== next.counter) return;
      this.#held.shift();
      this.#underway.delete(next.counter);
      next.emit();
    }
  }
}
