/**
 * Downsampling for charts: readings in [from, to) fall into buckets of `step` ms by their device time, and each bucket
 * keeps, per measurement, the count, min, max and sum. Memory is bounded by the number of buckets (which the caller
 * bounds) times the measurements a device sends, whatever the number of readings.
 */

export interface SeriesQuery {
  from: number;
  to: number;
  step: number;
}

/** One measurement in one bucket: [min, mean, max]. */
export type Aggregate = [number, number, number];

export interface SeriesBucket {
  /** Start of the bucket, device time in ms. */
  t: number;
  /** Readings in the bucket. */
  n: number;
  m: Record<string, Aggregate>;
}

interface Acc {
  n: number;
  m: Map<string, { n: number; min: number; max: number; sum: number }>;
}

export class Downsampler {
  readonly #q: SeriesQuery;
  readonly #buckets = new Map<number, Acc>();

  constructor(query: SeriesQuery) {
    this.#q = query;
  }

  /** Bucket count a query makes: its caller's bound on memory and on the answer's size. */
  static buckets(q: SeriesQuery): number {
    return Math.ceil((q.to - q.from) / q.step);
  }

  add(ts: number, m: Readonly<Record<string, number>>): void {
    if (ts < this.#q.from || ts >= this.#q.to) return;
    const index = Math.floor((ts - this.#q.from) / this.#q.step);
    let acc = this.#buckets.get(index);
    if (!acc) {
      acc = { n: 0, m: new Map() };
      this.#buckets.set(index, acc);
    }
    acc.n++;
    for (const [name, value] of Object.entries(m)) {
      const s = acc.m.get(name);
      if (s) {
        s.n++;
        s.sum += value;
        if (value < s.min) s.min = value;
        if (value > s.max) s.max = value;
      } else acc.m.set(name, { n: 1, min: value, max: value, sum: value });
    }
  }

  /** Non-empty buckets in time order. */
  result(): SeriesBucket[] {
    return [...this.#buckets.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, acc]) => ({
        t: this.#q.from + index * this.#q.step,
        n: acc.n,
        m: Object.fromEntries([...acc.m].map(([name, s]) => [name, [s.min, s.sum / s.n, s.max] as Aggregate])),
      }));
  }
}
