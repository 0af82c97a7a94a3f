/**
 * Retention (docs/operations.md, "Retention"): in the background, deletes readings older than `maxAgeDays` (by the
 * reading's time) and, while the database's files take more than `maxBytes`, the oldest readings of every device in
 * steps, then compacts the readings so that the space returns to the filesystem. The outbox names the readings still
 * waiting to go upstream (bounded by upstream.backlogBudgetBytes) rather than copying them, so a device's deletion
 * stops at its oldest unforwarded reading, and that is counted and logged: retention never drops an unforwarded
 * reading. Dead letters have their own bound (deadLetters.maxCount).
 */
import type { Logger } from '../shared/log.js';
import type { LevelStore } from './level-store.js';

export interface RetentionConfig {
  maxAgeDays: number | null;
  maxBytes: number | null;
  intervalMs: number;
}

export interface RetentionMetrics {
  retentionDeleted(reason: 'age' | 'size', n: number): void;
  /** A device whose deletion stopped short of the cutoff at its oldest reading not yet forwarded. */
  retentionHeld(n: number): void;
}

export interface Retention {
  /** Device time before which readings are gone, once a pass deleted some; null before. */
  readonly horizonTs: number | null;
  /** Runs one pass now (tests, and the first pass at start). */
  runOnce(): Promise<void>;
  close(): Promise<void>;
}

const DAY_MS = 86_400_000;
/** A pass for maxBytes deletes this share of the time span kept, then measures again. */
const SIZE_STEP = 0.05;

export function startRetention(
  store: LevelStore,
  cfg: RetentionConfig,
  deps: { log: Logger; metrics: RetentionMetrics; now: () => number },
): Retention {
  const { log, metrics, now } = deps;
  let horizonTs: number | null = null;
  let running: Promise<void> | null = null;
  let closed = false;

  async function deleteBefore(cutoffTs: number, reason: 'age' | 'size'): Promise<number> {
    let deleted = 0;
    const holds = await store.outboxHolds();
    const heldDevices: string[] = [];
    for (const id of await store.deviceIds()) {
      if (closed) break;
      const held = holds.get(id);
      if (held !== undefined && held < cutoffTs) heldDevices.push(id);
      deleted += await store.deleteReadingsBefore(id, Math.min(cutoffTs, held ?? Infinity));
    }
    if (heldDevices.length > 0) {
      metrics.retentionHeld(heldDevices.length);
      log.warn(
        { devices: heldDevices.slice(0, 10), count: heldDevices.length, cutoffTs, reason },
        'retention held back at readings not forwarded yet',
      );
    }
    if (deleted > 0) metrics.retentionDeleted(reason, deleted);
    // By age the horizon moves with the clock even when there was nothing to delete.
    if (deleted > 0 || reason === 'age') horizonTs = Math.max(horizonTs ?? 0, cutoffTs);
    return deleted;
  }

  async function oldestAndNewest(): Promise<{ oldest: number; newest: number } | null> {
    let oldest = Infinity;
    let newest = -Infinity;
    for (const id of await store.deviceIds()) {
      oldest = Math.min(oldest, (await store.oldestTs(id)) ?? Infinity);
      newest = Math.max(newest, (await store.newestTs(id)) ?? -Infinity);
    }
    // The span of the readings kept, not up to now: a store of old readings must not lose them all in one step.
    return oldest === Infinity ? null : { oldest, newest };
  }

  async function pass(): Promise<void> {
    const started = now();
    let byAge = 0;
    let bySize = 0;
    if (cfg.maxAgeDays !== null) byAge = await deleteBefore(now() - cfg.maxAgeDays * DAY_MS, 'age');
    if (byAge > 0) await store.compactReadings();
    if (cfg.maxBytes !== null) {
      let bytes = await store.bytesOnDisk();
      while (!closed && bytes > cfg.maxBytes) {
        const span = await oldestAndNewest();
        if (!span) break;
        const cutoff = span.oldest + Math.max(1, Math.ceil((span.newest - span.oldest) * SIZE_STEP));
        const n = await deleteBefore(cutoff, 'size');
        if (n === 0) break;
        bySize += n;
        await store.compactReadings();
        bytes = await store.bytesOnDisk();
      }
      if (bytes > cfg.maxBytes) {
        log.warn({ bytes, maxBytes: cfg.maxBytes }, 'store above retention.maxBytes with no reading left to delete');
      }
    }
    if (byAge + bySize > 0) {
      log.info(
        { byAge, bySize, horizonTs, ms: now() - started, bytes: await store.bytesOnDisk() },
        'retention deleted old readings',
      );
    }
  }

  function runOnce(): Promise<void> {
    running ??= pass()
      .catch((err: unknown) => log.error({ err }, 'retention pass failed'))
      .finally(() => {
        running = null;
      });
    return running;
  }

  const enabled = cfg.maxAgeDays !== null || cfg.maxBytes !== null;
  const timer = enabled ? setInterval(() => void runOnce(), cfg.intervalMs) : undefined;
  timer?.unref();
  if (enabled) void runOnce();

  return {
    get horizonTs() {
      return horizonTs;
    },
    runOnce,
    async close() {
      closed = true;
      clearInterval(timer);
      await running;
    },
  };
}
