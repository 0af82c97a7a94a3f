import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { createRng, type Rng } from '../../device-sim/random.js';
import { api, readingsOf } from '../helpers/api.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Bounded for CI; FUZZ_SECONDS and FUZZ_SEED run it longer or elsewhere. */
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 15);
const SEED = process.env.FUZZ_SEED ?? 'ci';
const CONCURRENT = 16;
/** What a gateway under this fuzz may hold: far below what one unbounded 256 MB packet would take. */
const RSS_BOUND_MB = 400;

function seedPackets(rng: Rng): Packet[] {
  const id = `fz-${rng.int(0, 9)}`;
  const body = payload(reading(rng.int(1, 3), rng.int(0, 1000)), rng.next() < 0.5 ? 'cbor' : 'json');
  const publish = (qos: 0 | 1 | 2, topic: string, bytes: Buffer): Packet => ({
    cmd: 'publish',
    topic,
    payload: bytes,
    qos,
    messageId: rng.int(1, 65535),
    dup: false,
    retain: rng.next() < 0.1,
  });
  return [
    publish(1, telemetryTopic(id), body),
    publish(2, telemetryTopic(id), body),
    publish(0, `sensors/${id}/status`, Buffer.from('online')),
    publish(1, 'lab/any/topic', Buffer.alloc(rng.int(0, 3000), 7)),
    {
      cmd: 'subscribe',
      messageId: rng.int(1, 65535),
      subscriptions: [{ topic: rng.next() < 0.5 ? '#' : '$SYS/#', qos: 1 }],
    },
    { cmd: 'unsubscribe', messageId: rng.int(1, 65535), unsubscriptions: ['#'] },
    { cmd: 'pubrel', messageId: rng.int(1, 65535) },
    { cmd: 'puback', messageId: rng.int(1, 65535) },
    { cmd: 'pingreq' },
  ];
}

function mutate(rng: Rng, bytes: Buffer): Buffer {
  const b = Buffer.from(bytes);
  switch (rng.int(0, 6)) {
    case 0:
      for (let i = rng.int(1, 4); i > 0; i--) b[rng.int(0, b.length - 1)] = rng.int(0, 255);
      return b;
    case 1:
      return b.subarray(0, rng.int(0, b.length));
    case 2: {
      const at = rng.int(0, b.length);
      return Buffer.concat([
        b.subarray(0, at),
        Buffer.from(Array.from({ length: rng.int(1, 16) }, () => rng.int(0, 255))),
        b.subarray(at),
      ]);
    }
    case 3:
      // A remaining length far beyond the body: a client that declares more than it sends.
      return Buffer.concat([b.subarray(0, 1), Buffer.from([0xff, 0xff, 0xff, 0x7f]), b.subarray(2)]);
    case 4:
      return Buffer.concat([b, b]);
    default:
      return b;
  }
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024;
}

/** One connection: a CONNECT (sometimes mutated), then a run of mutated packets, then gone. */
async function session(port: number, rng: Rng): Promise<number> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  // Not events.once: it rejects on the 'error' (a reset) that comes before 'close'.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await Promise.race([new Promise((resolve) => socket.once('connect', resolve)), closed]);
  const connectPacket = mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: rng.next() < 0.7,
    clientId: `fz-${rng.int(0, 30)}`,
    keepalive: 60,
  });
  socket.write(rng.next() < 0.3 ? mutate(rng, connectPacket) : connectPacket);
  let sent = 1;
  for (let i = rng.int(1, 30); i > 0 && !socket.destroyed; i--) {
    const seeds = seedPackets(rng);
    const packet = mqttPacket.generate(seeds[rng.int(0, seeds.length - 1)] as Packet);
    socket.write(rng.next() < 0.8 ? mutate(rng, packet) : packet);
    sent++;
  }
  // Either side may end it: the gateway on a malformed packet, or this client once its run is out (FIN sent), not
  // waiting for an answer the gateway may never give to a broken packet.
  const finished = new Promise<void>((resolve) => socket.once('finish', () => resolve()));
  socket.end();
  await Promise.race([closed, finished]);
  socket.destroy();
  await closed;
  return sent;
}

describe('a mutation fuzz against a running gateway', () => {
  it(`stays up, bounded in memory, with every reference reading intact (${SECONDS} s, seed ${SEED})`, async () => {
    const dir = await tempDir();
    const gw = await startGatewayProcess(join(dir, 'data'));
    const port = gw.ready.mqtt.port;
    const http = `http://127.0.0.1:${gw.ready.http.port}`;
    const ref = await connectDevice(`mqtt://127.0.0.1:${port}`, 'ref-1');
    for (let seq = 0; seq < 50; seq++)
      await ref.publishAsync(telemetryTopic('ref-1'), payload(reading(1, seq)), { qos: 1 });
    await ref.endAsync();

    const rng = createRng(SEED);
    const until = Date.now() + SECONDS * 1000;
    let packets = 0;
    let connections = 0;
    let peakRss = 0;
    const pid = gw.child.pid as number;
    const workers = Array.from({ length: CONCURRENT }, async (_, w) => {
      const mine = rng.fork(`worker-${w}`);
      while (Date.now() < until) {
        const sent = await session(port, mine);
        packets += sent;
        connections++;
        peakRss = Math.max(peakRss, await rssMb(pid));
      }
    });
    await Promise.all(workers);

    expect(gw.child.exitCode).toBe(null);
    expect((await api(http).health()).status).toBe(200);
    expect(peakRss).toBeLessThan(RSS_BOUND_MB);
    const kept = await readingsOf(http, 'ref-1', '?limit=100');
    expect(kept.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const after = await connectDevice(`mqtt://127.0.0.1:${port}`, 'ref-2');
    await after.publishAsync(telemetryTopic('ref-2'), payload(reading(1, 0)), { qos: 1 });
    console.log(`fuzz: ${connections} connections, ${packets} packets, peak RSS ${peakRss.toFixed(0)} MB`);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
  });
});
