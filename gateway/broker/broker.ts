/** The embedded Aedes broker and its listeners (listeners.ts). Owns them and closes them. */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Aedes, type AedesOptions } from 'aedes';
import { GatewayError } from '../domain/errors.js';
import type { Logger } from '../shared/log.js';
import type { AccessHooks } from './access.js';
import { checkReads, checkWrites, limitOfflineQueues, orderRouting } from './aedes-internals.js';
import { type Endpoint, type Listener, socketListener, type TlsFiles, webSocketListener } from './listeners.js';
import { FrameMeter } from './packet-guard.js';
import { expireOfflineSessions, type SessionStore } from './session-expiry.js';
import { publishOrphanedWills } from './wills.js';

export interface BrokerOptions {
  /**
   * Unique to this start of the gateway (wills.ts says why): Aedes keys queued messages and wills by broker id, and
   * takes a will whose broker id is its own for that of a device still connected.
   */
  id: string;
  host: string;
  port: number;
  /** MQTT over TLS, on its own address; null: none. */
  tls: (TlsFiles & { host: string; port: number }) | null;
  /** Persistent sessions offline this long are removed (session-expiry.ts). */
  sessions: { store: SessionStore; expiryMs: number };
  /** MQTT over WebSocket (`wss` with `tls`); null: none. */
  ws: { host: string; port: number; path: string; tls: TlsFiles | null } | null;
  authorizePublish: NonNullable<AedesOptions['authorizePublish']>;
  /** Where sessions, retained messages, wills and inbound QoS 2 state live (default: Aedes's in-memory store). */
  persistence?: AedesOptions['persistence'];
  access: Omit<AccessHooks, 'publishRefusal'>;
  limits: BrokerLimits;
  metrics: BrokerMetrics;
  log: Logger;
}

export interface BrokerLimits {
  maxPacketBytes: number;
  maxConnections: number;
  connectTimeoutMs: number;
  maxKeepaliveSeconds: number;
  /** Messages queued for a persistent session while it is offline; beyond, new ones are dropped and counted. */
  maxQueuedMessages: number;
  /** Bytes written to a client and not yet sent; beyond, it is disconnected (it stopped reading). */
  maxOutgoingBufferBytes: number;
}

export interface BrokerMetrics {
  /** The number of connected clients, after each connect and disconnect. */
  connectedClients(count: number): void;
  /** A connection closed because it went over a limit. */
  limitExceeded(limit: 'packet_size' | 'connections' | 'session_queue' | 'slow_client'): void;
  /** An offline persistent session removed after the expiry. */
  sessionExpired(): void;
}

export interface Broker {
  readonly aedes: Aedes;
  readonly address: Endpoint;
  /** Every listener's address: `mqtt`, and `mqtts` and `ws` when configured. */
  readonly addresses: { mqtt: Endpoint; mqtts?: Endpoint; ws?: Endpoint };
  /** Stops accepting connections and disconnects every client. Idempotent. */
  close(): Promise<void>;
}

export async function startBroker(opts: BrokerOptions): Promise<Broker> {
  const { log } = opts;
  const aedes = await Aedes.createBroker({
    id: opts.id,
    authorizePublish: opts.authorizePublish,
    ...(opts.persistence ? { persistence: opts.persistence } : {}),
    // No limit on messages routed at once. With Aedes's default (100), a QoS 0 flood with a subscriber attached queues
    // messages inside mqemitter without bound, and releasing that queue recurses until the stack overflows (seen
    // here: the gateway on Aedes 1.2 / mqemitter 7.1 died within seconds of a 100-publisher flood). Unlimited is still
    // bounded: Aedes reads a connection's next chunk only after every publish of the previous one was routed, and a
    // slow subscriber's socket pushes back.
    concurrency: 0,
    preConnect: opts.access.preConnect,
    authenticate: opts.access.authenticate,
    authorizeSubscribe: opts.access.authorizeSubscribe,
    connectTimeout: opts.limits.connectTimeoutMs,
    keepaliveLimit: opts.limits.maxKeepaliveSeconds,
  });
  orderRouting(aedes);
  limitOfflineQueues(aedes, opts.limits.maxQueuedMessages, (clientId) => {
    opts.metrics.limitExceeded('session_queue');
    log.debug({ clientId, maxQueuedMessages: opts.limits.maxQueuedMessages }, 'offline session queue full: dropped');
  });
  const closeAedes = () => new Promise<void>((resolve) => aedes.close(() => resolve()));
  try {
    // Before the listener opens, so that no device can connect and leave a new will under the same key first.
    const wills = await publishOrphanedWills(aedes, opts.authorizePublish);
    if (wills > 0) log.info({ wills }, 'published the wills of devices that were connected when the gateway stopped');
  } catch (err) {
    await closeAedes();
    throw new GatewayError(
      'GW_STORE_READ_FAILED',
      `cannot publish the wills left by the last run: ${(err as Error).message}`,
      { cause: err },
    );
  }
  let expiry: { close(): void };
  try {
    expiry = await expireOfflineSessions(aedes, {
      expiryMs: opts.sessions.expiryMs,
      sessions: opts.sessions.store,
      now: Date.now,
      log,
      expired: () => opts.metrics.sessionExpired(),
    });
  } catch (err) {
    await closeAedes();
    throw new GatewayError('GW_STORE_READ_FAILED', `cannot list the stored sessions: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const countClients = () => opts.metrics.connectedClients(aedes.connectedClients);
  aedes.on('client', countClients);
  aedes.on('clientDisconnect', countClients);
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (client, err) =>
    log.debug({ clientId: client.id, err: err.message }, 'connection error'),
  );

  const guard = (socket: Socket) => {
    const meter = new FrameMeter(opts.limits.maxPacketBytes);
    return checkReads(socket, (chunk) => {
      const declared = meter.over(chunk);
      if (declared === null) return true;
      opts.metrics.limitExceeded('packet_size');
      log.debug({ remote: socket.remoteAddress, declared }, 'connection closed: packet too large');
      return false;
    });
  };
  const hooks = {
    handle: (stream: Duplex, unsent: () => number) =>
      aedes.handle(
        checkWrites(stream, unsent, opts.limits.maxOutgoingBufferBytes, () => {
          opts.metrics.limitExceeded('slow_client');
          log.warn(
            { maxOutgoingBufferBytes: opts.limits.maxOutgoingBufferBytes },
            'client disconnected: it stopped reading what was sent to it',
          );
        }),
      ),
    guard,
    dropped: () => {
      opts.metrics.limitExceeded('connections');
      log.debug({ maxConnections: opts.limits.maxConnections }, 'connection dropped: too many connections');
    },
    maxConnections: opts.limits.maxConnections,
    maxPacketBytes: opts.limits.maxPacketBytes,
  };
  const listeners: Listener[] = [];
  const closeListeners = () => Promise.all(listeners.map((l) => l.close()));
  try {
    const tcp = await socketListener('MQTT', { host: opts.host, port: opts.port }, hooks);
    listeners.push(tcp);
    const addresses: Broker['addresses'] = { mqtt: tcp.address };
    if (opts.tls) {
      const tls = await socketListener('MQTT over TLS', { ...opts.tls, tls: opts.tls }, hooks);
      listeners.push(tls);
      addresses.mqtts = tls.address;
    }
    if (opts.ws) {
      const ws = await webSocketListener('MQTT over WebSocket', opts.ws, hooks);
      listeners.push(ws);
      addresses.ws = ws.address;
    }
    for (const [kind, a] of Object.entries(addresses)) log.info({ kind, host: a.host, port: a.port }, 'mqtt listening');
    return broker(addresses);
  } catch (err) {
    expiry.close();
    await closeListeners();
    await closeAedes();
    throw err;
  }

  function broker(addresses: Broker['addresses']): Broker {
    let closing: Promise<void> | undefined;
    return {
      aedes,
      address: addresses.mqtt,
      addresses,
      close() {
        expiry.close();
        closing ??= Promise.all([closeListeners(), closeAedes()]).then(() => undefined);
        return closing;
      },
    };
  }
}
