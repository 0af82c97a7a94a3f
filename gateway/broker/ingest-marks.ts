/**
 * What the ingest decided about a PUBLISH, kept on the packet object for the broker's later steps on the same packet
 * (Aedes hands the one object from authorizePublish to the inbound QoS 2 store and to routing).
 *
 * A classified reading (contract or foreign) is deduplicated by the ingest, durably and before the ack. That makes two
 * pieces of Aedes's per-message work redundant for it:
 * - routing a repeat (a duplicate of a stored reading) to local subscribers, who already had the first copy: it is skipped,
 *   so subscribers see each reading once even at QoS 1 and across a gateway crash;
 * - a durable inbound QoS 2 state (the PUBLISH held between PUBREC and PUBREL, two synced writes per message): it is
 *   kept in memory. After a crash a re-sent PUBLISH is a repeat (not stored, not routed) and a re-sent PUBREL gets its
 *   PUBCOMP either way, so what the devices and subscribers see is the same.
 * Rejected messages, and readings the dedup could not place (stale, an unconfirmed jump: kept in the dead letters), are
 * not marked and keep the durable path.
 */

import type { Seen } from '../ingest/ingest.js';

// A symbol-keyed property on the packet rather than a WeakMap: a WeakMap entry per message cost ≈ 3% of the broker's
// time at 100 × 10 and left an ephemeron per packet for the garbage collector.
const SEEN = Symbol('sensorgate.seen');
type Marked = { [SEEN]?: Seen };

export function markSeen(packet: object, seen: Seen): void {
  (packet as Marked)[SEEN] = seen;
}

/** The ingest classified the packet: it is deduplicated by sequence (or content for foreign topics). */
export function isDeduplicated(packet: object): boolean {
  return (packet as Marked)[SEEN] !== undefined;
}

/** A duplicate of a reading already stored. */
export function isRepeat(packet: object): boolean {
  return (packet as Marked)[SEEN] === 'repeat';
}
