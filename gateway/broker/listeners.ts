/**
 * The broker's listeners: MQTT over TCP, over TLS (optionally with client certificates), and over WebSocket (`ws`, or
 * `wss` with a certificate), each on its own address. Each hands Aedes a stream per connection and closes its server
 * and its connections on close.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { GatewayError } from '../domain/errors.js';

export interface Endpoint {
  host: string;
  port: number;
}

export interface Listener {
  readonly address: Endpoint;
  close(): Promise<void>;
}

export interface TlsFiles {
  cert: string;
  key: string;
  /** The CA that signs client certificates; with clientCerts `none` it is not used. */
  ca?: string | null;
  clientCerts?: 'none' | 'request' | 'require';
}

export interface ListenerHooks {
  /** Hands one connection to the broker, with how many bytes written to it are not yet sent. */
  handle(stream: Duplex, unsent: () => number): void;
  /** Wraps a TCP or TLS socket before the broker reads it (the packet-size guard). */
  guard(socket: Socket): Socket;
  /** A connection refused because the listener was at maxConnections. */
  dropped(): void;
  maxConnections: number;
  /** The largest WebSocket message, so that the WebSocket layer does not buffer more than a packet may hold. */
  maxPacketBytes: number;
}

async function tlsOptions(files: TlsFiles) {
  const read = (path: string) => readFile(path);
  try {
    const clientCerts = files.clientCerts ?? 'none';
    return {
      cert: await read(files.cert),
      key: await read(files.key),
      ...(files.ca ? { ca: await read(files.ca) } : {}),
      requestCert: clientCerts !== 'none',
      rejectUnauthorized: clientCerts === 'require',
    };
  } catch (err) {
    throw new GatewayError('GW_LISTEN_FAILED', `cannot read a TLS file: ${(err as Error).message}`, { cause: err });
  }
}

async function listen(server: Server | HttpServer, name: string, host: string, port: number): Promise<Endpoint> {
  try {
    server.listen(port, host);
    await once(server, 'listening');
  } catch (err) {
    throw new GatewayError('GW_LISTEN_FAILED', `${name} cannot listen on ${host}:${port}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const bound = server.address() as AddressInfo;
  return { host: bound.address, port: bound.port };
}

function limited(server: Server | HttpServer, hooks: ListenerHooks): void {
  server.maxConnections = hooks.maxConnections;
  server.on('drop', () => hooks.dropped());
}

const closeServer = (server: Server | HttpServer) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    if ('closeAllConnections' in server) server.closeAllConnections();
  });

/** MQTT over TCP, or over TLS when `tls` is given. */
export async function socketListener(
  name: string,
  o: { host: string; port: number; tls?: TlsFiles | null },
  hooks: ListenerHooks,
): Promise<Listener> {
  // noDelay: an ack is one small packet the device is waiting for; Nagle would hold it back.
  const onSocket = (socket: Socket) => hooks.handle(hooks.guard(socket), () => socket.writableLength);
  const server: Server = o.tls
    ? createTlsServer({ ...(await tlsOptions(o.tls)), noDelay: true }, onSocket)
    : createServer({ noDelay: true }, onSocket);
  const sockets = new Set<Socket>();
  server.on(o.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // A failed TLS handshake is the client's problem; without a listener it would be an uncaught error.
  server.on('tlsClientError', () => undefined);
  limited(server, hooks);
  const address = await listen(server, name, o.host, o.port);
  return {
    address,
    close: () => {
      for (const s of sockets) s.destroy();
      return closeServer(server);
    },
  };
}

/** MQTT over WebSocket on `path` (`ws`), or over TLS (`wss`) when `tls` is given. */
export async function webSocketListener(
  name: string,
  o: { host: string; port: number; path: string; tls?: TlsFiles | null },
  hooks: ListenerHooks,
): Promise<Listener> {
  const server = o.tls ? createHttpsServer(await tlsOptions(o.tls)) : createHttpServer();
  // The packet size plus the largest fixed header: a WebSocket frame carries at most one packet's worth.
  const wss = new WebSocketServer({ server, path: o.path, maxPayload: hooks.maxPacketBytes + 5 });
  wss.on('connection', (ws) => {
    const stream = createWebSocketStream(ws);
    hooks.handle(stream, () => stream.writableLength + ws.bufferedAmount);
  });
  limited(server, hooks);
  const address = await listen(server, name, o.host, o.port);
  return {
    address,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeServer(server);
    },
  };
}
