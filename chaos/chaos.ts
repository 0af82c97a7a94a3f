/**
 * `npm run chaos -- --cycles N --seconds S --seed X`: a reproducible chaos run. A simulated fleet (mixed QoS, through
 * the fault proxy) publishes to the gateway, which forwards to a real Mosquitto; meanwhile the gateway is SIGKILLed
 * at random moments (mid-commit, mid-forward) and restarted, and Mosquitto is stopped and started. At the end, from the
 * devices' ledger and an upstream subscriber: no acked QoS 1/2 reading may be missing from the store or upstream, no
 * reading may be stored twice, no QoS 2 reading may arrive upstream twice. Prints the table; exits 1 on a violation.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { parseFaults } from '../device-sim/faults.js';
import { readLedger, readingId } from '../device-sim/ledger.js';
import { createRng } from '../device-sim/random.js';
import { runSimulation } from '../device-sim/simulator.js';
import { verify } from '../device-sim/verify.js';
import { startGatewayProcess, type GatewayProcess } from '../launch/server-process.js';
import { freePort, mosquittoProcess } from '../launch/mosquitto-process.js';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '4' },
    seed: { type: 'string', default: 'chaos' },
    devices: { type: 'string', default: '12' },
    interval: { type: 'string', default: '50' },
    json: { type: 'boolean', default: false },
  },
});
const cycles = Number(values.cycles);
const seconds = Number(values.seconds);
const rng = createRng(values.seed);
const log = (s: string) => process.stderr.write(`${s}\n`);

const work = await mkdtemp(join(tmpdir(), 'sensorgate-chaos-'));
await mkdir(join(work, 'mosquitto'));
const broker = await mosquittoProcess(join(work, 'mosquitto'), await freePort());
await broker.start();
const mqttPort = await freePort();
const httpPort = await freePort();
const config = join(work, 'gateway.yaml');
await writeFile(
  config,
  [
    'gatewayId: chaos',
    `mqtt: { host: 127.0.0.1, port: ${mqttPort} }`,
    `http: { host: 127.0.0.1, port: ${httpPort} }`,
    `store: { dataDir: ${join(work, 'data')} }`,
    `upstream: { enabled: true, url: ${broker.url}, backoff: { baseMs: 50, capMs: 300, stableMs: 2000 } }`,
    'log: { level: warn }',
    '',
  ].join('\n'),
);

// The cloud side: a persistent QoS 2 subscription counting every mid it receives.
const upstreamCounts = new Map<string, number>();
const cloud = mqtt.connect(broker.url, { clientId: 'chaos-cloud', clean: false, reconnectPeriod: 100 });
cloud.on('message', (_topic, payload) => {
  const body = JSON.parse(payload.toString()) as { mid: string } | { mid: string }[];
  for (const r of Array.isArray(body) ? body : [body]) upstreamCounts.set(r.mid, (upstreamCounts.get(r.mid) ?? 0) + 1);
});
await new Promise<void>((resolve) => cloud.once('connect', () => resolve()));
await cloud.subscribeAsync('sensorgate/#', { qos: 2 });

let gateway: GatewayProcess | undefined;
async function startGateway(): Promise<void> {
  gateway = await startGatewayProcess(['--config', config]);
}
async function killGateway(): Promise<void> {
  await gateway?.kill();
}

let kills = 0;
let upstreamRestarts = 0;
let exitCode = 1;
try {
  await startGateway();
  const ledgerDir = join(work, 'ledger');
  const fleet = runSimulation({
    url: `mqtt://127.0.0.1:${mqttPort}`,
    devices: Number(values.devices),
    qos: 'mix',
    intervalMs: Number(values.interval),
    durationS: cycles * seconds,
    encoding: 'mix',
    seed: values.seed,
    ledgerDir,
    faults: parseFaults('reset=0.05,stall=0.02,stallMs=1000,latency=2,jitter=3,reboot=0.01,dup=0.02'),
    idPrefix: 'chaos-',
    topicPrefix: 'sensors',
    maxBuffer: 5000,
    drainMs: 30_000,
  });
  for (let cycle = 0; cycle < cycles; cycle++) {
    await new Promise((resolve) => setTimeout(resolve, (0.3 + 0.7 * rng.next()) * seconds * 1000));
    await killGateway();
    kills++;
    if (rng.next() < 0.3) {
      await broker.stop();
      upstreamRestarts++;
      await broker.start();
    }
    await startGateway();
    log(
      `cycle ${cycle + 1}/${cycles}: gateway killed and restarted${upstreamRestarts ? `, upstream restarts so far ${upstreamRestarts}` : ''}`,
    );
  }
  const summary = await fleet;

  // Let the forwarder finish: the outbox empty and nothing more arriving upstream.
  const api = `http://127.0.0.1:${httpPort}/api/v1/forwarding`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    const status = (await (await fetch(api)).json()) as { backlog: { readings: number }; inFlight: number };
    if (status.backlog.readings === 0 && status.inFlight === 0) break;
    if (Date.now() > deadline) throw new Error(`the backlog did not drain: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  let settled = -1;
  while (settled !== [...upstreamCounts.values()].reduce((a, b) => a + b, 0)) {
    settled = [...upstreamCounts.values()].reduce((a, b) => a + b, 0);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }

  const report = await verify(ledgerDir, `http://127.0.0.1:${httpPort}`);
  const ledger = readLedger(ledgerDir);
  const upstream = [0, 1, 2].map((qos) => {
    let acked = 0;
    let missing = 0;
    let duplicated = 0;
    for (const r of ledger.readings.values()) {
      if (r.qos !== qos) continue;
      const n = upstreamCounts.get(readingId(r.device, r.boot, r.seq)) ?? 0;
      if (r.acked) acked++;
      if (r.acked && qos > 0 && n === 0) missing++;
      if (n > 1) duplicated += n - 1;
    }
    return { qos, acked, missing, duplicated };
  });
  const violations = [
    ...report.violations.map((v) => `${v.kind} in the store: ${v.deviceId} boot ${v.boot} seq ${v.seq} (QoS ${v.qos})`),
    ...upstream
      .filter((u) => u.qos > 0 && u.missing > 0)
      .map((u) => `QoS ${u.qos}: ${u.missing} acked readings missing upstream`),
    ...upstream.filter((u) => u.qos === 2 && u.duplicated > 0).map((u) => `QoS 2: ${u.duplicated} duplicates upstream`),
  ];
  const rows = report.rows.map((r, qos) => ({
    ...r,
    upstreamMissing: upstream[qos]?.missing ?? 0,
    upstreamDuplicated: upstream[qos]?.duplicated ?? 0,
  }));
  const table = [
    `chaos: ${cycles} cycles × ~${seconds} s, seed ${values.seed}: ${kills} gateway SIGKILLs, ${upstreamRestarts} upstream restarts, ${summary.proxy.resets} connection resets, ${summary.proxy.stalls} black holes, ${summary.totals.reboots} device reboots, ${summary.totals.resent} duplicate re-sends`,
    '',
    'QoS  sent    acked   stored  lost  lost after ack  stored twice  upstream missing (acked)  upstream duplicates',
    ...rows.map((r) =>
      [
        String(r.qos).padEnd(4),
        String(r.sent).padEnd(7),
        String(r.acked ?? '-').padEnd(7),
        String(r.stored).padEnd(7),
        String(r.lost).padEnd(5),
        String(r.lostAfterAck ?? '-').padEnd(15),
        String(r.duplicatesStored).padEnd(13),
        String(r.qos === 0 ? '-' : r.upstreamMissing).padEnd(25),
        String(r.upstreamDuplicated),
      ].join(' '),
    ),
    '',
    violations.length === 0
      ? 'no violation: every acked QoS 1/2 reading stored once and forwarded; no QoS 2 duplicate upstream'
      : `VIOLATIONS:\n  ${violations.slice(0, 30).join('\n  ')}`,
  ];
  process.stdout.write(
    values.json
      ? `${JSON.stringify({ cycles, seconds, seed: values.seed, kills, upstreamRestarts, rows, violations })}\n`
      : `${table.join('\n')}\n`,
  );
  exitCode = violations.length === 0 ? 0 : 1;
} finally {
  await killGateway();
  await cloud.endAsync(true);
  await broker.stop();
  await rm(work, { recursive: true, force: true });
}
process.exitCode = exitCode;
