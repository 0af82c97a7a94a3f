/**
 * Foreign readings: JSON (or CBOR) from devices that do not speak the contract (Tasmota, Shelly, ...). They carry no
 * boot/seq, so the gateway assigns a sequence and deduplicates by content hash within a time window.
 */
import { createHash } from 'node:crypto';
import type { Rejection } from './wire.js';

const MAX_MEASUREMENTS = 64;
const MAX_DEPTH = 4;
/** Bounds the persisted per-device hash list; a device sending more distinct payloads per window is deduplicated
 * against its latest ones only. */
const MAX_RECENT = 256;

/**
 * Numeric leaves become measurements, named by their dotted path (`{"BME280":{"Temperature":21}}` →
 * `BME280.Temperature`); a bare number becomes `value`. Strings and booleans are not measurements and are not kept.
 */
export function foreignMeasurements(value: unknown): { ok: true; m: Record<string, number> } | Rejection {
  const m: Record<string, number> = {};
  let count = 0;
  const walk = (v: unknown, path: string, depth: number): void => {
    if (typeof v === 'number') {
      if (Number.isFinite(v) && count < MAX_MEASUREMENTS) {
        m[path || 'value'] = v;
        count++;
      }
      return;
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v) || depth >= MAX_DEPTH) return;
    for (const [k, child] of Object.entries(v)) {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(k)) continue;
      walk(child, path ? `${path}.${k}` : k, depth + 1);
    }
  };
  walk(value, '', 0);
  if (count === 0)
    return { ok: false, code: 'GW_PAYLOAD_INVALID', reason: 'foreign payload has no numeric measurement' };
  return { ok: true, m };
}

/**
 * Which identical payloads from one device are the same reading:
 * - time: those that carry the device's own time (`timeField`): a sensor that reports the same temperature twice
 *   without a time sends two readings;
 * - content: all of them, within the window;
 * - none: none; every payload is a reading.
 */
export const FOREIGN_DEDUP = ['time', 'content', 'none'] as const;
export type ForeignDedup = (typeof FOREIGN_DEDUP)[number];

/** Whether an identical earlier payload makes this one a duplicate. */
export function dedupsByContent(value: unknown, mode: ForeignDedup, timeField: string): boolean {
  if (mode !== 'time') return mode === 'content';
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.hasOwn(value, timeField);
}

/** A short, stable digest of the raw payload bytes; equal payloads are the same reading within the window. */
export function contentHash(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('base64url').slice(0, 22);
}

export interface ForeignState {
  readonly nextSeq: number;
  /** [hash, receive time] of recent readings, oldest first, none older than the window. */
  readonly recent: readonly (readonly [string, number])[];
}

export type ForeignVerdict =
  | { verdict: 'new'; seq: number; state: ForeignState }
  | { verdict: 'duplicate'; state: ForeignState };

/** Pure: decides whether a foreign payload was already seen within `windowMs` and assigns its sequence. */
export function classifyForeign(
  state: ForeignState | null,
  hash: string,
  now: number,
  windowMs: number,
): ForeignVerdict {
  const nextSeq = state?.nextSeq ?? 0;
  const recent = (state?.recent ?? []).filter(([, t]) => now - t < windowMs);
  if (recent.some(([h]) => h === hash)) return { verdict: 'duplicate', state: { nextSeq, recent } };
  if (windowMs > 0) recent.push([hash, now]);
  if (recent.length > MAX_RECENT) recent.splice(0, recent.length - MAX_RECENT);
  return { verdict: 'new', seq: nextSeq, state: { nextSeq: nextSeq + 1, recent } };
}
