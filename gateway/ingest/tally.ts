/**
 * Counting. Per message: a new copy of the device's counters (records stay immutable, so the durable ones remain for a
 * rollback). Per batch: one metrics call per outcome and QoS, not per message (a prom-client call per outcome showed on
 * the hot path; docs/benchmarks.md).
 */
import type { Counters, Outcome, Qos } from '../domain/model.js';
import type { QosCounters } from './device-states.js';

/**
 * A copy of the counters with one QoS's changed. Every field is written out so that all counter objects share one
 * shape and no `for…in` runs per message.
 */
export function bump(counters: QosCounters, qos: Qos, d: Partial<Counters>): QosCounters {
  const o = counters[qos];
  const c: Counters = {
    received: o.received + (d.received ?? 0),
    stored: o.stored + (d.stored ?? 0),
    duplicate: o.duplicate + (d.duplicate ?? 0),
    stale: o.stale + (d.stale ?? 0),
    missing: o.missing + (d.missing ?? 0),
    late: o.late + (d.late ?? 0),
    rejected: o.rejected + (d.rejected ?? 0),
    gatewayTime: o.gatewayTime + (d.gatewayTime ?? 0),
  };
  return qos === 0
    ? [c, counters[1], counters[2]]
    : qos === 1
      ? [counters[0], c, counters[2]]
      : [counters[0], counters[1], c];
}

/** Messages per outcome and QoS in one batch. */
export class Tally {
  readonly #counts = new Map<Outcome, [number, number, number]>();

  add(outcome: Outcome, qos: Qos): void {
    const byQos = this.#counts.get(outcome) ?? [0, 0, 0];
    byQos[qos]++;
    this.#counts.set(outcome, byQos);
  }

  /** Each non-zero count, once. */
  report(report: (outcome: Outcome, qos: Qos, n: number) => void): void {
    for (const [outcome, byQos] of this.#counts) {
      for (const qos of [0, 1, 2] as const) if (byQos[qos] > 0) report(outcome, qos, byQos[qos]);
    }
  }
}
