/**
 * Fault specification: `--faults reset=0.05,stall=0.02,stallMs=3000,latency=20,jitter=10,reboot=0.01,dup=0.02`.
 *
 * | key     | meaning |
 * |---------|---------|
 * | reset   | per connection per second: probability the proxy resets the TCP connection (RST both ways) |
 * | stall   | per connection per second: probability the proxy black-holes the connection: bytes are discarded both ways, and after stallMs the connection is dropped, as a NAT or a dead link does |
 * | stallMs | how long a black hole lasts before the connection is dropped (default 3000) |
 * | latency | ms added to every chunk in both directions (order kept) |
 * | jitter  | up to this many ms more, at random |
 * | reboot  | per device per second: probability the device reboots (unacked readings in RAM are lost, boot + 1) |
 * | dup     | per reading: probability the device also re-sends an already acked reading, as buggy firmware does |
 */

export interface FaultSpec {
  reset: number;
  stall: number;
  stallMs: number;
  latency: number;
  jitter: number;
  reboot: number;
  dup: number;
}

export const NO_FAULTS: FaultSpec = Object.freeze({
  reset: 0,
  stall: 0,
  stallMs: 3000,
  latency: 0,
  jitter: 0,
  reboot: 0,
  dup: 0,
});

const PROBABILITIES = new Set(['reset', 'stall', 'reboot', 'dup']);

/** Parses a fault spec; throws with every problem listed. `none` or an empty string means no faults. */
export function parseFaults(text: string): FaultSpec {
  const spec: FaultSpec = { ...NO_FAULTS };
  if (text.trim() === '' || text.trim() === 'none') return spec;
  const problems: string[] = [];
  for (const part of text.split(',')) {
    const [key = '', value = ''] = part.split('=').map((s) => s.trim());
    const n = Number(value);
    if (!(key in spec)) problems.push(`unknown fault "${key}"`);
    else if (value === '' || !Number.isFinite(n) || n < 0) problems.push(`${key} must be a non-negative number`);
    else if (PROBABILITIES.has(key) && n > 1) problems.push(`${key} is a probability, at most 1`);
    else spec[key as keyof FaultSpec] = n;
  }
  if (problems.length > 0) throw new Error(`bad --faults: ${problems.join('; ')}`);
  return spec;
}

export function hasNetworkFaults(spec: FaultSpec): boolean {
  return spec.reset > 0 || spec.stall > 0 || spec.latency > 0 || spec.jitter > 0;
}
