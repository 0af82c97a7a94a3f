/**
 * Who may connect, publish and subscribe, as Aedes hooks. The decisions come from a ClientAccess (the wiring passes
 * auth/access.ts); this file holds what is Aedes-specific: the CONNACK return codes, SUBACK 0x80 for a refused
 * subscription, closing the connection on a refused publish (MQTT 3.1.1 has no negative PUBACK, and acking would
 * promise the reading is kept), and the grant of each connected client.
 */
import { TLSSocket } from 'node:tls';
import type { AedesOptions, Client } from 'aedes';
import type { Logger } from '../shared/log.js';
import { Throttle } from '../ingest/throttle.js';

/** What one authenticated client may do, with `{username}` and `{clientid}` already filled in. */
export interface Grant {
  /** The user name, or null for an anonymous client. */
  user: string | null;
  role: string;
  mayPublish(topic: string): boolean;
  maySubscribe(filter: string): boolean;
}

/** CONNACK return codes of MQTT 3.1.1: 2 identifier rejected, 4 bad user name or password, 5 not authorized. */
export type ConnectRefusal = { ok: false; returnCode: 2 | 4 | 5; reason: string };

export interface ConnectRequest {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  /** The CN of a client certificate the TLS listener verified against its CA; null without one. */
  certName: string | null;
}

function certName(client: Client): string | null {
  const conn = client.conn;
  if (!(conn instanceof TLSSocket) || !conn.authorized) return null;
  const cn = conn.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : null;
}

export interface ClientAccess {
  authenticate(req: ConnectRequest): Promise<{ ok: true; grant: Grant } | ConnectRefusal>;
}

export interface AccessMetrics {
  denied(action: 'connect' | 'publish' | 'subscribe'): void;
}

export interface AccessHooks {
  preConnect: NonNullable<AedesOptions['preConnect']>;
  authenticate: NonNullable<AedesOptions['authenticate']>;
  authorizeSubscribe: NonNullable<AedesOptions['authorizeSubscribe']>;
  /** Null when the client may publish to the topic; otherwise why not (already counted and logged). */
  publishRefusal(client: Client | null, topic: string): string | null;
}

export function createAccessHooks(deps: {
  access: ClientAccess;
  metrics: AccessMetrics;
  log: Logger;
  now(): number;
  logIntervalMs: number;
}): AccessHooks {
  const { access, metrics, log, now } = deps;
  const grants = new WeakMap<Client, Grant>();
  /** Clients that sent an empty client id and asked for a persistent session [MQTT-3.1.3-8]. */
  const emptyPersistent = new WeakSet<Client>();
  /** The will topic of each connecting client: a will is a publish, checked against the grant before CONNACK. */
  const willTopics = new WeakMap<Client, string>();
  // One line per kind of refusal and interval, with the latest example: random client ids must not grow a map.
  const throttle = new Throttle(deps.logIntervalMs);
  const refused = (action: 'connect' | 'publish' | 'subscribe', fields: object, reason: string) => {
    metrics.denied(action);
    throttle.run(action, now(), () => log.warn({ action, ...fields, reason }, `${action} refused (rate-limited log)`));
  };

  return {
    preConnect(client, packet, callback) {
      if (!packet.clientId && !packet.clean) emptyPersistent.add(client);
      if (packet.will) willTopics.set(client, packet.will.topic);
      callback(null, true);
    },
    authenticate(client, username, password, callback) {
      const fail = (returnCode: 2 | 4 | 5, reason: string) => {
        refused('connect', { clientId: client.id, username }, reason);
        callback(Object.assign(new Error(reason), { returnCode }), false);
      };
      if (emptyPersistent.has(client)) {
        fail(2, 'an empty client id needs a clean session');
        return;
      }
      access
        .authenticate({ clientId: client.id, username, password: password ?? undefined, certName: certName(client) })
        .then(
          (result) => {
            if (!result.ok) return fail(result.returnCode, result.reason);
            const will = willTopics.get(client);
            if (will !== undefined && !result.grant.mayPublish(will)) return fail(5, `may not leave a will on ${will}`);
            grants.set(client, result.grant);
            callback(null, true);
          },
          (err: Error) => callback(Object.assign(err, { returnCode: 3 as const }), false),
        );
    },
    authorizeSubscribe(client, sub, callback) {
      const grant = client && grants.get(client);
      if (grant?.maySubscribe(sub.topic)) return callback(null, sub);
      refused('subscribe', { clientId: client?.id, user: grant?.user, filter: sub.topic }, 'not in the grant');
      callback(null, null);
    },
    publishRefusal(client, topic) {
      // No client: the broker itself publishes (a will of an earlier run, checked when its client connected).
      if (!client) return null;
      const grant = grants.get(client);
      if (grant?.mayPublish(topic)) return null;
      const reason = `${grant?.user ?? 'anonymous'} (${grant?.role ?? 'no grant'}) may not publish to ${topic}`;
      refused('publish', { clientId: client.id, topic }, reason);
      return reason;
    },
  };
}
