/** The embedded Aedes broker on a TCP listener. Owns both and closes both. */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes, type AedesOptions } from 'aedes';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';

export interface BrokerOptions {
  id: string;
  host: string;
  port: number;
  authorizePublish: NonNullable<AedesOptions['authorizePublish']>;
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
  const aedes = await Aedes.createBroker({ id: opts.id, authorizePublish: opts.authorizePublish });
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
