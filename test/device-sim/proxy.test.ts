import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { NO_FAULTS, parseFaults, type FaultSpec } from '../../device-sim/faults.js';
import { startFaultProxy } from '../../device-sim/proxy.js';
import { createRng } from '../../device-sim/random.js';

/** The far side: a TCP server standing in for the gateway, recording what each accepted socket sees. */
async function farSide() {
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: (server.address() as AddressInfo).port, sockets };
}

async function through(spec: FaultSpec) {
  const far = await farSide();
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: far.port }, spec, createRng('proxy-test'));
  onTestFinished(() => proxy.close());
  const client = connect(proxy.port, '127.0.0.1');
  client.on('error', () => undefined);
  onTestFinished(() => void client.destroy());
  await once(client, 'connect');
  const deadline = Date.now() + 5000;
  while (far.sockets.length === 0 && Date.now() < deadline) await new Promise<void>((r) => setImmediate(r));
  return { far, proxy, client, server: far.sockets[0] as Socket };
}

describe('fault proxy', () => {
  it('parses fault specs and lists every problem', () => {
    expect(parseFaults('reset=0.1,latency=20')).toMatchObject({ reset: 0.1, latency: 20, stall: 0 });
    expect(parseFaults('none')).toEqual(NO_FAULTS);
    expect(() => parseFaults('reset=2,bogus=1,latency=-1')).toThrow(
      /reset is a probability.*unknown fault "bogus".*latency must be/,
    );
  });

  it('forwards bytes both ways when calm', async () => {
    const { client, server } = await through(NO_FAULTS);
    client.write('ping');
    const [got] = (await once(server, 'data')) as [Buffer];
    expect(got.toString()).toBe('ping');
    server.write('pong');
    const [back] = (await once(client, 'data')) as [Buffer];
    expect(back.toString()).toBe('pong');
  });

  it('resets connections: the gateway side sees ECONNRESET', async () => {
    const { server, proxy } = await through({ ...NO_FAULTS, reset: 1 });
    const [err] = (await once(server, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
    expect(proxy.stats.resets).toBe(1);
  });

  it('black-holes connections: the gateway side stops receiving, then loses the connection', async () => {
    const { client, server, proxy } = await through({ ...NO_FAULTS, stall: 1, stallMs: 300 });
    let received = 0;
    server.on('data', (d: Buffer) => (received += d.length));
    const writer = setInterval(() => client.write('x'), 5);
    onTestFinished(() => clearInterval(writer));
    await once(server, 'close');
    clearInterval(writer);
    expect(proxy.stats.stalls).toBe(1);
    // What the device wrote during the black hole never arrived.
    expect(received).toBeLessThan(client.bytesWritten);
  });
});
