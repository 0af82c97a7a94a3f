/** The embedded Aedes broker on a TCP listener. Owns both and closes both. */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes, type AedesOptions } from 'aedes';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import { isRepeat } from './ingest-marks.js';

export interface BrokerOptions {
  id: string;
  host: string;
  port: number;
  authorizePublish: NonNullable<AedesOptions['authorizePublish']>;
  /** Where sessions, retained messages, wills and inbound QoS 2 state live (default: Aedes's in-memory store). */
  persistence?: AedesOptions['persistence'];
  log: Logger;
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
    // here: the gateway on Aedes 1.2 / mqemitter 7.1 died within seconds of a 100-publisher flood). Unlimited is still bounded: Aedes reads a connection's next
    // chunk only after every publish of the previous one was routed, and a slow subscriber's socket pushes back.
    concurrency: 0,
  });
  // Aedes routes every PUBLISH it accepts through publish(); a repeat of a stored reading stops here (its ack is
  // already sent or, at QoS 2, follows), so local subscribers get each reading once (ingest-marks.ts).
  // Aedes 1.x calls publish(packet, client, done) internally; its typings only show the (packet, done) form.
  type Done = (err?: Error | null) => void;
  type Publish = (packet: object, client: unknown, done?: Done) => void;
  const internal = aedes as unknown as { publish: Publish };
  const route = internal.publish.bind(aedes);
  internal.publish = (packet, client, done) => {
    if (isRepeat(packet)) {
      (typeof client === 'function' ? (client as Done) : done)?.(null);
      return;
    }
    route(packet, client, done);
  };
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'connection error'));

  // noDelay: an ack is one small packet the device is waiting for; Nagle would hold it back.
  const server: Server = createServer({ noDelay: true }, (socket) => aedes.handle(socket));
  try {
    server.listen(opts.port, opts.host);
    await once(server, 'listening');
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw new GatewayError('GW_LISTEN_FAILED', `MQTT cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const bound = server.address() as AddressInfo;
  log.info({ host: bound.address, port: bound.port }, 'mqtt listening');

  let closing: Promise<void> | undefined;
  return {
    aedes,
    address: { host: bound.address, port: bound.port },
    close() {
      closing ??= Promise.all([
        new Promise<void>((resolve) => server.close(() => resolve())),
        new Promise<void>((resolve) => aedes.close(() => resolve())),
      ]).then(() => undefined);
      return closing;
    },
  };
}
