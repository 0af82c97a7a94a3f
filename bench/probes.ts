/**
 * `npm run bench:probes`: the hostile-client probes of docs/security.md against this build and, with --baseline, an
 * older build's gateway CLI in the same run, side by side. Each probe gets a fresh gateway on a temp data dir.
 *   node dist/bench/probes.js [--baseline OTHER/dist/gateway/main.js] [--readings N]
 * 1. six connections each sending a PUBLISH that declares 256 MB and then 48 MB of its body: the gateway's peak RSS;
 * 2. a `#` subscriber at QoS 1 that stops reading while a publisher sends 100 KB messages for 5 s: acks/s, peak RSS;
 * 3. 200 offline persistent sessions on sensors/#, then N QoS 1 readings from 10 devices: readings/s, bytes written
 *    per reading (/proc/PID/io), RSS at the end.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { type GatewayProcess, startServerProcess } from '../launch/server-process.js';
import { rssMb, writtenBytes } from './proc.js';

const { values } = parseArgs({
  options: { baseline: { type: 'string' }, readings: { type: 'string', default: '3000' } },
});
const READINGS = Number(values.readings);

async function withGateway<T>(main: string, probe: (gw: GatewayProcess, peak: () => number) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'sensorgate-probe-'));
  // An empty config: each build on its own defaults (the repository's config/gateway.yaml may not suit an older one).
  await writeFile(join(dir, 'gateway.yaml'), '{}\n');
  const gw = (await startServerProcess(main, [
    'start',
    '--config',
    join(dir, 'gateway.yaml'),
    '--data-dir',
    join(dir, 'data'),
    '--mqtt-port',
    '0',
    '--http-port',
    '0',
  ])) as GatewayProcess;
  const pid = gw.proc.pid as number;
  let peak = await rssMb(pid);
  const sampler = setInterval(() => {
    rssMb(pid).then(
      (mb) => (peak = Math.max(peak, mb)),
      () => undefined,
    );
  }, 50);
  try {
    return await probe(gw, () => peak);
  } finally {
    clearInterval(sampler);
    await gw.kill();
    await rm(dir, { recursive: true, force: true });
  }
}

const client = async (port: number, clientId: string, opts: mqtt.IClientOptions = {}) =>
  mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0, ...opts });

async function bigPackets(main: string): Promise<string> {
  return withGateway(main, async (gw, peak) => {
    const idle = peak();
    const one = (i: number) =>
      new Promise<void>((resolve) => {
        const s = connect(gw.mqttPort, '127.0.0.1');
        s.on('error', () => undefined);
        s.on('close', () => resolve());
        s.on('connect', async () => {
          s.write(
            mqttPacket.generate({
              cmd: 'connect',
              protocolId: 'MQTT',
              protocolVersion: 4,
              clean: true,
              clientId: `big-${i}`,
              keepalive: 60,
            }),
          );
          s.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x7f, 0x00, 0x01, 0x61]));
          const mb = Buffer.alloc(1 << 20, 0x62);
          for (let n = 0; n < 48 && !s.destroyed; n++) {
            if (!s.write(mb)) {
              await new Promise((r) => {
                s.once('drain', r);
                s.once('close', r);
              });
            }
          }
          s.destroy();
        });
      });
    await Promise.all(Array.from({ length: 6 }, (_, i) => one(i)));
    return `peak RSS ${peak().toFixed(0)} MB (idle ${idle.toFixed(0)})`;
  });
}

async function pausedSubscriber(main: string): Promise<string> {
  return withGateway(main, async (gw, peak) => {
    const stuck = connect(gw.mqttPort, '127.0.0.1');
    stuck.on('error', () => undefined);
    await new Promise((r) => stuck.once('connect', r));
    const subscribed = new Promise((r) => stuck.once('data', r));
    stuck.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        clientId: 'stuck',
        keepalive: 600,
      }),
    );
    stuck.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 1 }] }));
    await subscribed;
    stuck.pause();
    const camera = await client(gw.mqttPort, 'camera');
    const until = Date.now() + 5000;
    let acked = 0;
    while (Date.now() < until) {
      await camera.publishAsync('lab/camera/frame', Buffer.alloc(100_000, 1), { qos: 1 });
      acked++;
    }
    await camera.endAsync(true);
    stuck.destroy();
    return `${(acked / 5).toFixed(0)} acks/s, peak RSS ${peak().toFixed(0)} MB`;
  });
}

async function offlineSessions(main: string): Promise<string> {
  return withGateway(main, async (gw) => {
    for (let i = 0; i < 200; i++) {
      const c = await client(gw.mqttPort, `offline-${i}`, { clean: false });
      await c.subscribeAsync('sensors/#', { qos: 1 });
      await c.endAsync();
    }
    const pid = gw.proc.pid as number;
    const written = await writtenBytes(pid);
    const devices = await Promise.all(Array.from({ length: 10 }, (_, i) => client(gw.mqttPort, `d-${i}`)));
    const started = Date.now();
    await Promise.all(
      devices.map(async (c, i) => {
        for (let seq = 0; seq < READINGS / 10; seq++) {
          const body = JSON.stringify({ v: 1, boot: 1, seq, ts: 1_700_000_000_000 + seq, m: { temp_c: 20 } });
          await c.publishAsync(`sensors/d-${i}/telemetry`, body, { qos: 1 });
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    const perReading = ((await writtenBytes(pid)) - written) / READINGS / 1024;
    await Promise.all(devices.map((c) => c.endAsync(true)));
    return `${(READINGS / seconds).toFixed(0)} readings/s, ${perReading.toFixed(1)} KB written/reading, RSS ${(await rssMb(pid)).toFixed(0)} MB`;
  });
}

const builds: [string, string][] = [['this build', 'dist/gateway/main.js']];
if (values.baseline) builds.push(['baseline', values.baseline]);
const probes: [string, (main: string) => Promise<string>][] = [
  ['6 × PUBLISH declaring 256 MB, 48 MB of body each', bigPackets],
  ['paused # subscriber (QoS 1), 100 KB messages for 5 s', pausedSubscriber],
  [`200 offline sessions, ${READINGS} QoS 1 readings`, offlineSessions],
];
process.stdout.write(
  `| probe | ${builds.map(([name]) => name).join(' | ')} |\n|---|${builds.map(() => '---').join('|')}|\n`,
);
for (const [name, probe] of probes) {
  const row: string[] = [];
  for (const [, main] of builds) row.push(await probe(main));
  process.stdout.write(`| ${name} | ${row.join(' | ')} |\n`);
}
