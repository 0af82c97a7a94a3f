/**
 * `npm run fleet -- --gateways N --devices M --seconds S`: N gateway processes, each with M simulated stations over
 * MQTT, against one upstream (Mosquitto, or nats-server with JetStream) behind a TCP proxy of ours. The proxy cuts
 * the upstream off for `--outage` seconds (every connection closed, every new one closed at once) and then lets it
 * through again. Reported: upstream connection attempts per second (what the proxy accepted), time until every backlog
 * drained, readings lost (acked by a gateway, never in the cloud) and duplicated in the cloud, and the gateways' RSS.
 *   node dist/bench/fleet.js [--gateways 100] [--devices 5] [--seconds 150] [--every 2000] [--cut-at 30]
 *        [--outage 60] [--upstream mosquitto|nats] [--jitter true|false]
 */
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Socket, connect as tcpConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { connect as natsConnect, nanos } from 'nats';
import { encodeReading } from '../gateway/domain/wire.js';
import { freePort, mosquittoProcess } from '../launch/mosquitto-process.js';
import { natsProcess, streamMessages } from '../launch/nats-process.js';
import { type GatewayProcess, startGatewayProcess } from '../launch/server-process.js';
import { rssMb } from './proc.js';

const { values } = parseArgs({
  options: {
    gateways: { type: 'string', default: '100' },
    devices: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '150' },
    every: { type: 'string', default: '2000' },
    'cut-at': { type: 'string', default: '30' },
    outage: { type: 'string', default: '60' },
    upstream: { type: 'string', default: 'mosquitto' },
    jitter: { type: 'string', default: 'true' },
  },
});
const GATEWAYS = Number(values.gateways);
const DEVICES = Number(values.devices);
const SECONDS = Number(values.seconds);
const EVERY = Number(values.every);
const CUT_AT = Number(values['cut-at']) * 1000;
const OUTAGE = Number(values.outage) * 1000;
const KIND = values.upstream === 'nats' ? 'nats' : 'mqtt';
const JITTER = values.jitter !== 'false';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`[fleet ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

const dir = await mkdtemp(join(tmpdir(), 'sensorgate-fleet-'));
const cleanups: (() => Promise<unknown>)[] = [];

/** A TCP proxy to the upstream that counts every connection it accepts, per second, and can cut everyone off. */
async function startProxy(target: number) {
  const perSecond = new Map<number, number>();
  const open = new Set<Socket>();
  let cut = false;
  const server = createServer((socket) => {
    const second = Math.floor(Date.now() / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    if (cut) return void socket.destroy();
    const upstream = tcpConnect(target, '127.0.0.1');
    open.add(socket);
    const close = () => {
      open.delete(socket);
      socket.destroy();
      upstream.destroy();
    };
    socket.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    socket.pipe(upstream).pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    perSecond,
    cut() {
      cut = true;
      for (const s of open) s.destroy();
    },
    restore() {
      cut = false;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

// ---- the cloud --------------------------------------------------------------------------------------------------

const upstreamPort = await freePort();
const cloudMids = new Map<string, number>();
let countCloud: () => Promise<void>;
if (KIND === 'mqtt') {
  await mkdir(join(dir, 'mosquitto'));
  const broker = await mosquittoProcess(join(dir, 'mosquitto'), upstreamPort);
  await broker.start();
  cleanups.push(() => broker.stop());
  const sub = mqtt.connect(broker.url, {
    clientId: 'fleet-cloud',
    clean: false,
    protocolVersion: 5,
    properties: { sessionExpiryInterval: 3600 },
  });
  await new Promise((resolve) => sub.once('connect', resolve));
  await sub.subscribeAsync('sensorgate/#', { qos: 2 });
  sub.on('message', (_t, payload) => {
    const body = JSON.parse(payload.toString()) as { mid: string } | { mid: string }[];
    for (const r of [body].flat()) cloudMids.set(r.mid, (cloudMids.get(r.mid) ?? 0) + 1);
  });
  cleanups.push(() => sub.endAsync(true));
  countCloud = async () => undefined;
} else {
  const server = await natsProcess(join(dir, 'nats'), { port: upstreamPort, name: 'cloud' });
  await server.start();
  cleanups.push(() => server.stop());
  const nc = await natsConnect({ servers: server.url });
  cleanups.push(() => nc.close());
  // Made once here, not by a hundred gateways at once.
  await (await nc.jetstreamManager()).streams.add({
    name: 'SENSORGATE',
    subjects: ['sensorgate.>'],
    duplicate_window: nanos(300_000),
  });
  countCloud = async () => {
    for await (const m of streamMessages(nc, 'SENSORGATE')) {
      const mid = (JSON.parse(new TextDecoder().decode(m.data)) as { mid: string }).mid;
      cloudMids.set(mid, (cloudMids.get(mid) ?? 0) + 1);
    }
  };
}
const proxy = await startProxy(upstreamPort);
cleanups.push(() => proxy.close());

// ---- the gateways -----------------------------------------------------------------------------------------------

const upstreamUrl = KIND === 'mqtt' ? `mqtt://127.0.0.1:${proxy.port}` : `nats://127.0.0.1:${proxy.port}`;
const gateways: GatewayProcess[] = [];
cleanups.push(() => Promise.all(gateways.map((g) => g.stop())));
const started = Date.now();
for (let i = 0; i < GATEWAYS; i += 8) {
  const batch = await Promise.all(
    Array.from({ length: Math.min(8, GATEWAYS - i) }, async (_, k) => {
      const id = `gw-${String(i + k).padStart(3, '0')}`;
      const config = join(dir, `${id}.yaml`);
      await writeFile(
        config,
        [
          `gatewayId: ${id}`,
          'upstream:',
          '  enabled: true',
          `  kind: ${KIND}`,
          `  url: ${upstreamUrl}`,
          `  backoff: { jitter: ${JITTER} }`,
          '  nats: { duplicateWindowMs: 300000 }',
          '',
        ].join('\n'),
      );
      return startGatewayProcess(
        ['--config', config, '--data-dir', join(dir, id), '--mqtt-port', '0', '--http-port', '0'],
        { logLevel: 'error' },
      );
    }),
  );
  gateways.push(...batch);
}
log(`${GATEWAYS} gateways up in ${((Date.now() - started) / 1000).toFixed(1)} s`);

// ---- the stations -----------------------------------------------------------------------------------------------

const acked = new Set<string>();
const clients: MqttClient[] = [];
cleanups.push(() => Promise.all(clients.map((c) => c.endAsync(true))));
let sending = true;
for (const [g, gw] of gateways.entries()) {
  for (let d = 0; d < DEVICES; d++) {
    const id = `st-${g}-${d}`;
    const client = mqtt.connect(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: id, reconnectPeriod: 500 });
    clients.push(client);
    void (async () => {
      await new Promise((resolve) => client.once('connect', resolve));
      // Spread over the interval, so the fleet does not send in lockstep.
      await sleep(Math.random() * EVERY);
      for (let seq = 0; sending; seq++) {
        const r = { v: 1 as const, boot: 1, seq, ts: Date.now(), m: { temp_c: 20 + (seq % 7), rh_pct: 55 } };
        client
          .publishAsync(`sensors/${id}/telemetry`, encodeReading(r, 'cbor'), { qos: 1 })
          .then(() => acked.add(`${id}:1:${seq}`))
          .catch(() => undefined);
        await sleep(EVERY);
      }
    })();
  }
}

// ---- the outage -------------------------------------------------------------------------------------------------

const t0 = Date.now();
await sleep(CUT_AT);
const cutAt = Date.now();
proxy.cut();
log(`upstream cut off for ${OUTAGE / 1000} s`);
await sleep(OUTAGE);
const restoredAt = Date.now();
proxy.restore();
log('upstream back');
/** Every gateway has forwarded everything that arrived before `since` (its oldest outbox entry is younger). */
async function drainedSince(since: number): Promise<boolean> {
  const states = await Promise.all(
    gateways.map(async (gw) => {
      const res = await fetch(`http://127.0.0.1:${gw.httpPort}/api/v1/forwarding`);
      return ((await res.json()) as { backlog: { oldestAgeMs: number | null } }).backlog.oldestAgeMs;
    }),
  );
  const now = Date.now();
  return states.every((age) => age === null || now - age >= since);
}
let drainedAt = 0;
const draining = (async () => {
  for (const deadline = restoredAt + 600_000; Date.now() < deadline; await sleep(250)) {
    if (await drainedSince(restoredAt)) {
      drainedAt = Date.now();
      return;
    }
  }
})();
await sleep(Math.max(0, t0 + SECONDS * 1000 - Date.now()));
sending = false;
log('stations stopped; waiting for the backlogs of the outage to drain, and the last readings');
await draining;
const stoppedAt = Date.now();
for (const deadline = stoppedAt + 600_000; Date.now() < deadline; await sleep(500)) {
  if (await drainedSince(stoppedAt + 2 * EVERY)) break;
}
const rss = await Promise.all(gateways.map((g) => rssMb(g.proc.pid as number)));
await sleep(2000);
await countCloud();

// ---- report -----------------------------------------------------------------------------------------------------

const lost = [...acked].filter((mid) => !cloudMids.has(mid)).length;
const duplicated = [...cloudMids.values()].filter((n) => n > 1).length;
const second = (t: number) => Math.floor(t / 1000);
const attempts = (from: number, to: number) => {
  const out: number[] = [];
  for (let s = second(from); s <= second(to); s++) out.push(proxy.perSecond.get(s) ?? 0);
  return out;
};
const duringOutage = attempts(cutAt + 1000, restoredAt - 1);
const afterRestore = attempts(restoredAt, restoredAt + 60_000);
const peak = (xs: number[]) => Math.max(0, ...xs);
const busySeconds = (xs: number[]) => xs.filter((n) => n > 0).length;
const reconnectedIn = (() => {
  let last = 0;
  afterRestore.forEach((n, i) => {
    if (n > 0) last = i + 1;
  });
  return last;
})();
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(
  JSON.stringify({
    upstream: KIND === 'mqtt' ? 'mosquitto' : 'nats-jetstream',
    jitter: JITTER,
    gateways: GATEWAYS,
    devicesPerGateway: DEVICES,
    readingsAcked: acked.size,
    outageSeconds: OUTAGE / 1000,
    attemptsPerSecondDuringOutage: { peak: peak(duringOutage), secondsWithAttempts: busySeconds(duringOutage) },
    attemptsPerSecondAfterRestore: { peak: peak(afterRestore), secondsUntilLastReconnect: reconnectedIn },
    drainSecondsAfterRestore: drainedAt ? (drainedAt - restoredAt) / 1000 : null,
    lost,
    duplicatedInCloud: duplicated,
    gatewayRssMb: {
      mean: Math.round(mean(rss)),
      max: Math.round(peak(rss)),
      total: Math.round(rss.reduce((a, b) => a + b, 0)),
    },
    outageTimeline: duringOutage,
    restoreTimeline: afterRestore.slice(0, reconnectedIn),
  }),
);
for (const c of cleanups.reverse()) await c();
await rm(dir, { recursive: true, force: true });
process.exit(lost > 0 ? 1 : 0);
