/**
 * The two lanes of the outbox, as cursors over the arrival sequence (gseq). At every (re)connect, what was committed
 * up to that moment becomes the backlog (sent behind, paced, marked historical) and what is committed after it is
 * live (sent first). Within each lane entries go in gseq order, which is commit order, so per-device order holds.
 */
export class Lanes {
  #highest: number;
  #boundary: number;
  #live: number;
  #backlog = 0;

  /** `lastGseq`: the highest entry committed before this start; all of it is backlog until the first connect. */
  constructor(lastGseq: number) {
    this.#highest = lastGseq;
    this.#boundary = lastGseq;
    this.#live = lastGseq;
  }

  committed(gseq: number): void {
    if (gseq > this.#highest) this.#highest = gseq;
  }

  /** The link came up: everything committed while it was down is backlog from now on. */
  reconnected(): void {
    this.#boundary = this.#highest;
    this.#live = Math.max(this.#live, this.#boundary);
  }

  /** Live entries are those after this gseq. */
  get liveCursor(): number {
    return this.#live;
  }

  /** Backlog entries are those after this gseq, up to `boundary`. */
  get backlogCursor(): number {
    return this.#backlog;
  }

  get boundary(): number {
    return this.#boundary;
  }

  get backlogLeft(): boolean {
    return this.#backlog < this.#boundary;
  }

  sentLive(gseq: number): void {
    this.#live = Math.max(this.#live, gseq);
  }

  sentBacklog(gseq: number): void {
    this.#backlog = Math.max(this.#backlog, gseq);
  }

  /** Nothing is left in the backlog range. */
  backlogDrained(): void {
    this.#backlog = this.#boundary;
  }

  /** Entries from `gseq` on were handed out but never sent: each lane takes them again from there. */
  rewind(gseq: number): void {
    const before = gseq - 1;
    if (before < this.#boundary) this.#backlog = Math.min(this.#backlog, before);
    else this.#live = Math.min(this.#live, before);
  }
}
