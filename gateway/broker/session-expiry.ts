/**
 * Expiry of persistent sessions whose client stays away: after `expiryMs` offline, a session's subscriptions, queued
 * messages and inbound QoS 2 state are removed (as Mosquitto's persistent_client_expiration does). How long a session
 * has been offline is kept in memory: after a restart every stored session starts its wait again, so a restart can
 * only lengthen a session's life, never cut it short.
 */
import type { Aedes } from 'aedes';
import type { Logger } from '../shared/log.js';

export interface SessionStore {
  /** The client id of every stored persistent session. */
  stored(): AsyncIterable<string>;
  remove(clientId: string): Promise<void>;
}

export interface SessionExpiryOptions {
  expiryMs: number;
  sessions: SessionStore;
  now(): number;
  log: Logger;
  expired(clientId: string): void;
}

export async function expireOfflineSessions(aedes: Aedes, o: SessionExpiryOptions): Promise<{ close(): void }> {
  const connected = (id: string) =>
    (aedes as unknown as { clients: Record<string, unknown> }).clients[id] !== undefined;
  const offlineSince = new Map<string, number>();
  const started = o.now();
  for await (const id of o.sessions.stored()) if (!connected(id)) offlineSince.set(id, started);
  aedes.on('client', (client) => offlineSince.delete(client.id));
  aedes.on('clientDisconnect', (client) => {
    if (!client.clean) offlineSince.set(client.id, o.now());
  });

  let sweeping = false;
  const sweep = async () => {
    if (sweeping) return;
    sweeping = true;
    try {
      const due = [...offlineSince].filter(([, since]) => o.now() - since >= o.expiryMs).map(([id]) => id);
      for (const id of due) {
        if (connected(id)) continue;
        await o.sessions.remove(id);
        offlineSince.delete(id);
        o.expired(id);
        o.log.info({ clientId: id, expiryMs: o.expiryMs }, 'offline session expired');
      }
    } catch (err) {
      o.log.error({ err }, 'session expiry failed; will try again');
    } finally {
      sweeping = false;
    }
  };
  // A quarter of the expiry, so a session goes at most 25 % late; at least every minute for long expiries.
  const timer = setInterval(() => void sweep(), Math.max(100, Math.min(60_000, o.expiryMs / 4)));
  timer.unref();
  return { close: () => clearInterval(timer) };
}
