/**
 * When a station counts as silent: no reading for three of its usual intervals (and at least 10 s), or for a fixed
 * time when the owner set one (`ui.silentAfterMs`). The usual interval is the median of the gaps between its last few readings by
 * arrival time, so one late reading or one burst does not move it.
 */

/** Gaps kept per device for the median. */
const GAPS = 9;
/** Missed intervals after which a station is silent. */
const MISSED = 3;
/** Never sooner than this: a station sending every few hundred ms would flap on every hiccup of the network. */
const MIN_SILENT_MS = 10_000;

export interface ActivityView {
  /** Median gap between its recent readings, ms; null until it sent two. */
  usualIntervalMs: number | null;
  /** No reading for longer than silentAfterMs. */
  silent: boolean;
  /** The limit used: the configured one, or three usual intervals, or the fallback. */
  silentAfterMs: number;
}

export class Activity {
  readonly #last = new Map<string, number>();
  readonly #gaps = new Map<string, number[]>();
  readonly #fixedMs: number | null;
  readonly #fallbackMs: number;

  /** `fixedMs`: ui.silentAfterMs (null: three usual intervals); `fallbackMs` while the interval is unknown. */
  constructor(fixedMs: number | null, fallbackMs: number) {
    this.#fixedMs = fixedMs;
    this.#fallbackMs = fallbackMs;
  }

  /** A reading of the device arrived at `rx`. */
  seen(deviceId: string, rx: number): void {
    const last = this.#last.get(deviceId);
    this.#last.set(deviceId, Math.max(rx, last ?? rx));
    if (last === undefined || rx <= last) return;
    const gaps = this.#gaps.get(deviceId) ?? [];
    gaps.push(rx - last);
    if (gaps.length > GAPS) gaps.shift();
    this.#gaps.set(deviceId, gaps);
  }

  usualIntervalMs(deviceId: string): number | null {
    const gaps = this.#gaps.get(deviceId);
    if (!gaps || gaps.length === 0) return null;
    const sorted = [...gaps].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] as number;
  }

  /** `lastSeen`: the device record's last-seen time (it survives a restart; the gaps do not). */
  view(deviceId: string, lastSeen: number, now: number): ActivityView {
    const usual = this.usualIntervalMs(deviceId);
    const silentAfterMs =
      this.#fixedMs ?? (usual === null ? this.#fallbackMs : Math.max(MIN_SILENT_MS, MISSED * usual));
    return { usualIntervalMs: usual, silent: now - lastSeen > silentAfterMs, silentAfterMs };
  }
}
