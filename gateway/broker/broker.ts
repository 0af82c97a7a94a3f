/** The embedded Aedes broker on a TCP listener. Owns both and closes both. */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Aedes, type AedesOptions } from 'aedes';
import { GatewayError } from '../domain/errors.js';
import type { Logger } from '../shared/log.js';
import type { AccessHooks } from './access.js';
import { checkReads, orderRouting } from './aedes-internals.js';
import { FrameMeter } from './packet-guard.js';
import { publishOrphanedWills } from './wills.js';

export interface BrokerOptions {
  /**
   * Unique to this start of the gateway (wills.ts says why): Aedes keys queued messages and wills by broker id, and
   * takes a will whose broker id is its own for that of a device still connected.
   */
  id: string;
  host: string;
  port: number;
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
}

export interface BrokerMetrics {
  /** The number of connected clients, after each connect and disconnect. */
  connectedClients(count: number): void;
  /** A connection closed because it went over a limit. */
  limitExceeded(limit: 'packet_size' | 'connections'): void;
}

export interface Broker {
  readonly aedes: Aedes;
  readonly address: { host: string; port: number };
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
  const countClients = () => opts.metrics.connectedClients(aedes.connectedClients);
  aedes.on('client', countClients);
  aedes.on('clientDisconnect', countClients);
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (client, err) =>
    log.debug({ clientId: client.id, err: err.message }, 'connection error'),
  );

  // noDelay: an ack is one small packet the device is waiting for; Nagle would hold it back.
  const server: Server = createServer({ noDelay: true }, (socket) => aedes.handle(guarded(socket)));
  server.maxConnections = opts.limits.maxConnections;
  server.on('drop', () => {
    opts.metrics.limitExceeded('connections');
    log.debug({ maxConnections: opts.limits.maxConnections }, 'connection dropped: too many connections');
  });
  const guarded = (socket: Socket) => {
    const meter = new FrameMeter(opts.limits.maxPacketBytes);
    return checkReads(socket, (chunk) => {
      const declared = meter.over(chunk);
      if (declared === null) return true;
      opts.metrics.limitExceeded('packet_size');
      log.debug({ remote: socket.remoteAddress, declared }, 'connection closed: packet too large');
      return false;
    });
  };
  try {
    server.listen(opts.port, opts.host);
    await once(server, 'listening');
  } catch (err) {
    await closeAedes();
    throw new GatewayError(
      'GW_LISTEN_FAILED',
      `MQTT cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const bound = server.address() as AddressInfo;
  log.info({ host: bound.address, port: bound.port }, 'mqtt listening');

  let closing: Promise<void> | undefined;
  return {
    aedes,
    address: { host: bound.address, port: bound.port },
    close() {
      closing ??= Promise.all([new Promise<void>((resolve) => server.close(() => resolve())), closeAedes()]).then(
        () => undefined,
      );
      return closing;
    },
  };
}
