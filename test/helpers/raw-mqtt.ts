import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet';
import { onTestFinished } from 'vitest';

export interface RawSession {
  socket: Socket;
  /** The next packet of this kind from the broker. */
  next(cmd: string): Promise<Packet>;
  send(p: Packet): void;
  /** Resolves when the broker closed the connection. */
  closed: Promise<void>;
}

/** A raw MQTT 3.1.1 connection, so that a test decides exactly what is sent (and what is not). */
export async function rawSocket(port: number): Promise<RawSession> {
  const socket: Socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => undefined);
  const closed = once(socket, 'close').then(() => undefined);
  await once(socket, 'connect');
  const parser = mqttPacket.parser();
  const waiting: { cmd: string; resolve(p: Packet): void }[] = [];
  parser.on('packet', (p: Packet) => {
    const i = waiting.findIndex((w) => w.cmd === p.cmd);
    if (i >= 0) waiting.splice(i, 1)[0]?.resolve(p);
  });
  socket.on('data', (d) => parser.parse(d));
  return {
    socket,
    closed,
    next: (cmd) => new Promise<Packet>((resolve) => waiting.push({ cmd, resolve })),
    send: (p) => socket.write(mqttPacket.generate(p)),
  };
}

/** A raw session after CONNECT, with the CONNACK the broker answered. */
export async function rawSession(
  port: number,
  clientId: string,
  connect: Partial<IConnectPacket> = {},
): Promise<RawSession & { connack: Packet }> {
  const session = await rawSocket(port);
  const connack = session.next('connack');
  session.send({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: false,
    clientId,
    keepalive: 60,
    ...connect,
  });
  return { ...session, connack: await connack };
}
