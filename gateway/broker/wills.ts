/**
 * Wills left by a gateway that stopped without disconnecting its devices (a crash, SIGKILL, a power cut).
 *
 * Aedes keeps each connected device's will in the persistence under the id of the broker that holds the connection,
 * and publishes the wills of brokers it has not heard from for three heartbeats (Aedes 1.2 `_clearWills`, every four
 * heartbeats: four minutes by default). A gateway that restarts with the id it had before takes those wills for its
 * own live connections and never publishes them, so a device's retained `offline` status never appeared. The broker
 * id is therefore new at every start, and the wills of earlier starts are published once, right away, before the
 * listener opens: they can only be orphans, since this broker is the only one writing to its persistence.
 */
import { promisify } from 'node:util';
import type { Aedes, AedesOptions } from 'aedes';
import { type Will, willStore } from './aedes-internals.js';

type AuthorizePublish = NonNullable<AedesOptions['authorizePublish']>;

/**
 * The broker id for one start of the gateway: the gateway id and a start count that the caller keeps durably, fixed
 * width so that sessions' queued messages (keyed by broker id and counter) list in the order they were queued.
 */
export function brokerId(gatewayId: string, start: number): string {
  return `${gatewayId}~${start.toString(16).padStart(8, '0')}`;
}

/** Publishes (through the same authorization as any PUBLISH) and removes every will of an earlier broker id. */
export async function publishOrphanedWills(aedes: Aedes, authorizePublish: AuthorizePublish): Promise<number> {
  const persistence = willStore(aedes);
  const authorize = promisify(authorizePublish);
  const publish = promisify((packet: Will, cb: (err?: Error | null) => void) => aedes.publish(packet, cb));
  let published = 0;
  for await (const will of persistence.streamWill({ [aedes.id]: Date.now() })) {
    // Routed as this broker's own packet: under the dead broker's id its counter (numbered anew from 1 at each start)
    // would collide with that broker's packets still queued for persistent sessions, and lose to them in Aedes's
    // per-client dedupe (aedes-internals.ts, section 2).
    const packet: Will = { ...will, brokerId: aedes.id };
    await authorize(null, packet);
    await publish(packet);
    await persistence.delWill({ id: will.clientId, brokerId: will.brokerId });
    published++;
  }
  return published;
}
