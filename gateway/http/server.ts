/** The HTTP listener. Owns the server and closes it (and its keep-alive connections). */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatewayError } from '../domain/errors.js';
import type { Logger } from '../shared/log.js';

export interface HttpServer {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

export async function startHttp(
  host: string,
  port: number,
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  log: Logger,
): Promise<HttpServer> {
  const server = createServer((req, res) => {
    handler(req, res).catch((err: unknown) => {
      log.error({ err }, 'http handler failed');
      res.destroy();
    });
  });
  try {
    server.listen(port, host);
    await once(server, 'listening');
  } catch (err) {
    throw new GatewayError('GW_LISTEN_FAILED', `HTTP cannot listen on ${host}:${port}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const bound = server.address() as AddressInfo;
  log.info({ host: bound.address, port: bound.port }, 'http listening');
  let closing: Promise<void> | undefined;
  return {
    address: { host: bound.address, port: bound.port },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
