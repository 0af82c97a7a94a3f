/**
 * Key encoding: fixed-width lowercase hex so that LevelDB's bytewise order is numeric order. `!` separates a device
 * id from the rest; it sorts below every character a device id may contain, so one device's range never overlaps
 * another's (`a!…` < `a-b!…`).
 */

const SEP = '!';
/** The character right after SEP: the exclusive upper bound of a device's key range. */
const SEP_END = '"';

export function hex(n: number, width: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`key component must be a safe non-negative integer: ${n}`);
  const s = n.toString(16);
  if (s.length > width) throw new TypeError(`key component ${n} exceeds ${width} hex digits`);
  return s.padStart(width, '0');
}

/** Gateway-wide arrival sequence; 14 hex digits hold every safe integer. */
export const seqKey = (gseq: number): string => hex(gseq, 14);

export function readingKey(deviceId: string, ts: number, gseq: number): string {
  return `${deviceId}${SEP}${hex(ts, 14)}${SEP}${seqKey(gseq)}`;
}

export function deviceRange(deviceId: string, fromTs?: number, toTs?: number): { gte: string; lt: string } {
  return {
    gte: fromTs === undefined ? `${deviceId}${SEP}` : `${deviceId}${SEP}${hex(fromTs, 14)}`,
    lt: toTs === undefined ? `${deviceId}${SEP_END}` : `${deviceId}${SEP}${hex(toTs + 1, 14)}`,
  };
}

/** The device time in a key made by readingKey. */
export function tsOfReadingKey(key: string): number {
  return parseInt(key.split(SEP)[1] as string, 16);
}
