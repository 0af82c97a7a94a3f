/**
 * `npm run bench`: the same load against (a) the gateway on its defaults, durability on, (b) bare Aedes in memory and
 * (c) Mosquitto with persistence on, for QoS 0/1/2 × {1 client W=1, 10 clients W=10, 100 clients W=10}; every cell
 * repeated with the systems interleaved; medians and min–max; then RSS with idle devices. Broker and load generator
 * run in separate processes, pinned to different cores where taskset and two cores exist.
 *   node dist/bench/run.js [--quick] [--out bench-results.json]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ClassicLevel } from 'classic-level';
import { freePort, MOSQUITTO, mosquittoProcess } from '../launch/mosquitto-process.js';
import { startGatewayProcess, startServerProcess } from '../launch/server-process.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench-results.json' },
    systems: { type: 'string', default: 'gateway,aedes,mosquitto' },
  },
});
const QUICK = values.quick;
const SECONDS = QUICK ? 1.5 : 5;
const REPS = QUICK ? 1 : 3;
const IDLE = QUICK ? [1000] : [1000, 10_000];
const SHAPES = [
  { clients: 1, inflight: 1 },
  { clients: 10, inflight: 10 },
  { clients: 100, inflight: 10 },
] as const;
const CLK_TCK = 100;

type SystemName = 'gateway' | 'aedes' | 'mosquitto';
let systems = values.systems.split(',') as SystemName[];
if (systems.includes('mosquitto') && !existsSync(MOSQUITTO)) {
  process.stderr.write(
    `Mosquitto not found at ${MOSQUITTO}: it is left out. Install it with: sudo apt-get install mosquitto\n`,
  );
  systems = systems.filter((s) => s !== 'mosquitto');
}
const pin = existsSync('/usr/bin/taskset') && availableParallelism() >= 2;
const pinned = (cpu: number, cmd: string[]): string[] => (pin ? ['taskset', '-c', String(cpu), ...cmd] : cmd);

interface Running {
  pid: number;
  crashed(): boolean;
  mqttPort: number;
  httpPort?: number;
  stop(): Promise<void>;
}

async function start(system: SystemName): Promise<Running> {
  const dir = await mkdtemp(join(tmpdir(), `sensorgate-bench-${system}-`));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  const command = pinned(0, []);
  if (system === 'mosquitto') {
    const broker = await mosquittoProcess(dir, await freePort(), command);
    await broker.start();
    const pid = broker.pid as number;
    return {
      pid,
      crashed: () => !broker.running,
      mqttPort: broker.port,
      stop: async () => {
        await broker.stop();
        await cleanup();
      },
    };
  }
  const server =
    system === 'gateway'
      ? await startGatewayProcess(['--data-dir', join(dir, 'data'), '--mqtt-port', '0', '--http-port', '0'], {
          command,
        })
      : await startServerProcess('dist/launch/aedes-server.js', [], { command });
  return {
    pid: server.proc.pid as number,
    crashed: () => server.proc.exitCode !== null || server.proc.signalCode !== null,
    mqttPort: server.mqttPort,
    ...(server.httpPort === undefined ? {} : { httpPort: server.httpPort }),
    stop: async () => {
      await server.stop();
      await cleanup();
    },
  };
}

async function procStats(pid: number): Promise<{ cpuS: number; hwmMb: number; rssMb: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  const cpuS = (Number(stat[11]) + Number(stat[12])) / CLK_TCK;
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) =>
    Number(/(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(name)) ?? '')?.[1] ?? 0);
  return { cpuS, hwmMb: kb('VmHWM:') / 1024, rssMb: kb('VmRSS:') / 1024 };
}

async function gatewayCounters(httpPort: number): Promise<{ syncBatches: number; stored: number }> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const num = (re: RegExp) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
  return {
    syncBatches: num(/^sensorgate_commit_write_seconds_count\{sync="true"\} (\d+)/gm),
    stored: num(/^sensorgate_readings_total\{outcome="stored",qos="\d"\} (\d+)/gm),
  };
}

function runLoadgen(args: string[]): Promise<Record<string, number | null>> {
  const cmd = pinned(1, [process.execPath, 'dist/bench/loadgen.js', ...args]);
  const proc = spawn(cmd[0] as string, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  return (async () => {
    let last = '';
    for await (const line of createInterface({ input: proc.stdout })) last = line;
    return JSON.parse(last) as Record<string, number | null>;
  })();
}

interface Sample {
  rate: number;
  p50: number | null;
  p99: number | null;
  cpuUsPerReading: number;
  peakRssMb: number;
  readingsPerFsync?: number;
  fsyncsPerS?: number;
  crashed: boolean;
}

async function cell(system: SystemName, qos: number, clients: number, inflight: number): Promise<Sample> {
  const running = await start(system);
  try {
    const pid = running.pid;
    const before = await procStats(pid);
    const gBefore = running.httpPort ? await gatewayCounters(running.httpPort) : undefined;
    // QoS 0 is a flood: a fixed amount, so that a system slower than the generator is not left with minutes of backlog.
    // The count is final after 2 s without a delivery, in quick runs too: at the start of a flood the gateway's deliveries
    // can pause for up to ≈ 1 s while its writer catches up (measured), and a shorter wait ended the count early.
    const amount =
      qos === 0
        ? ['--count', String(SECONDS * 25_000), '--seconds', String(SECONDS * 20), '--settle', '2000']
        : ['--seconds', String(SECONDS)];
    const r = await runLoadgen([
      '--port',
      String(running.mqttPort),
      '--clients',
      String(clients),
      '--inflight',
      String(inflight),
      '--qos',
      String(qos),
      ...amount,
    ]);
    const crashed = running.crashed();
    const after = crashed ? before : await procStats(pid);
    const readings = (r.acked as number) || 1;
    const sample: Sample = {
      rate: r.rate as number,
      p50: r.p50 ?? null,
      p99: r.p99 ?? null,
      cpuUsPerReading: ((after.cpuS - before.cpuS) * 1e6) / readings,
      peakRssMb: after.hwmMb,
      crashed,
    };
    if (running.httpPort && gBefore && !crashed) {
      const gAfter = await gatewayCounters(running.httpPort);
      const batches = gAfter.syncBatches - gBefore.syncBatches;
      sample.readingsPerFsync = batches > 0 ? (gAfter.stored - gBefore.stored) / batches : 0;
      sample.fsyncsPerS = batches / (r.seconds as number);
    }
    return sample;
  } finally {
    await running.stop();
  }
}

async function idleRss(system: SystemName, n: number): Promise<number> {
  const running = await start(system);
  const cmd = pinned(1, [
    process.execPath,
    'dist/bench/loadgen.js',
    '--port',
    String(running.mqttPort),
    '--clients',
    String(n),
    '--idle',
  ]);
  const gen = spawn(cmd[0] as string, cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    for await (const line of createInterface({ input: gen.stdout })) if (line.includes('connected')) break;
    return (await procStats(running.pid)).rssMb;
  } finally {
    gen.kill('SIGTERM');
    await new Promise((resolve) => gen.once('exit', resolve));
    await running.stop();
  }
}

async function fsyncMs(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'sensorgate-fsync-'));
  const db = new ClassicLevel(dir);
  await db.open();
  const n = 300;
  const t = performance.now();
  for (let i = 0; i < n; i++) await db.batch([{ type: 'put', key: `k${i}`, value: 'v'.repeat(100) }], { sync: true });
  const ms = (performance.now() - t) / n;
  await db.close();
  await rm(dir, { recursive: true, force: true });
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
      ? (s[(s.length - 1) / 2] as number)
      : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

const results: Record<string, Record<SystemName, Sample[]>> = {};
const key = (qos: number, s: (typeof SHAPES)[number]) => `qos${qos} ${s.clients}x${s.inflight}`;
const startedAt = Date.now();
for (let rep = 0; rep < REPS; rep++) {
  for (const qos of [0, 1, 2]) {
    for (const shape of SHAPES) {
      const k = key(qos, shape);
      results[k] ??= { gateway: [], aedes: [], mosquitto: [] };
      const order = rep % 2 === 0 ? systems : [...systems].reverse();
      for (const system of order) {
        const s = await cell(system, qos, shape.clients, shape.inflight);
        (results[k] as Record<SystemName, Sample[]>)[system].push(s);
        process.stderr.write(
          `${k} ${system}: ${s.rate.toFixed(0)}/s p99 ${s.p99?.toFixed(2) ?? '-'} ms${s.crashed ? ' CRASHED' : ''}\n`,
        );
      }
    }
  }
}
const memory: Record<string, Record<string, number>> = {};
for (const n of IDLE) {
  memory[`idle ${n}`] = {};
  for (const system of systems) (memory[`idle ${n}`] as Record<string, number>)[system] = await idleRss(system, n);
}
const fsync = await fsyncMs();

const fmt = (xs: number[], digits = 0) => {
  if (xs.length === 0) return '-';
  const m = median(xs).toFixed(digits);
  return xs.length > 1 ? `${m} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})` : m;
};
const lines: string[] = [];
lines.push(
  `| cell | ${systems.map((s) => `${s} readings/s`).join(' | ')} | gw/aedes | gw/mosquitto | ${systems.map((s) => `${s} p99 ms`).join(' | ')} | ${systems.map((s) => `${s} CPU µs/reading`).join(' | ')} | gw readings/fsync | gw fsyncs/s |`,
);
lines.push(`|${'---|'.repeat(1 + systems.length * 3 + 4)}`);
for (const [k, bySystem] of Object.entries(results)) {
  const rate = (s: SystemName) => bySystem[s].map((x) => x.rate);
  const ratio = (other: SystemName) =>
    systems.includes(other) ? (median(rate('gateway')) / median(rate(other))).toFixed(2) : '-';
  const crashes = (s: SystemName) => (bySystem[s].some((x) => x.crashed) ? ' ✗crash' : '');
  lines.push(
    `| ${k} | ${systems.map((s) => fmt(rate(s)) + crashes(s)).join(' | ')} | ${ratio('aedes')} | ${ratio('mosquitto')} | ${systems
      .map((s) => fmt(bySystem[s].map((x) => x.p99 ?? NaN).filter(Number.isFinite), 2))
      .join(' | ')} | ${systems
      .map((s) =>
        fmt(
          bySystem[s].map((x) => x.cpuUsPerReading),
          1,
        ),
      )
      .join(
        ' | ',
      )} | ${fmt(bySystem.gateway.map((x) => x.readingsPerFsync ?? NaN).filter(Number.isFinite), 1)} | ${fmt(bySystem.gateway.map((x) => x.fsyncsPerS ?? NaN).filter(Number.isFinite))} |`,
  );
}
lines.push('');
lines.push(`| memory (RSS MB) | ${systems.join(' | ')} |`);
lines.push(`|${'---|'.repeat(1 + systems.length)}`);
for (const [k, v] of Object.entries(memory))
  lines.push(`| ${k} | ${systems.map((s) => (v[s] ?? NaN).toFixed(0)).join(' | ')} |`);
const load = results[key(1, SHAPES[2])];
if (load)
  lines.push(`| peak under qos1 100x10 | ${systems.map((s) => fmt(load[s].map((x) => x.peakRssMb))).join(' | ')} |`);
const aedesRtt = median((results[key(1, SHAPES[0])]?.aedes ?? []).map((x) => x.p50 ?? NaN).filter(Number.isFinite));
const serialLimit = 1000 / (fsync + (Number.isFinite(aedesRtt) ? aedesRtt : 0));
const gw11 = median((results[key(1, SHAPES[0])]?.gateway ?? []).map((x) => x.rate));
lines.push('');
lines.push(
  `fsync (one sync LevelDB batch) ${fsync.toFixed(3)} ms; bare Aedes QoS 1 round trip p50 ${aedesRtt.toFixed(3)} ms; serial fsync limit ${serialLimit.toFixed(0)}/s; gateway 1x1 QoS 1 ${gw11.toFixed(0)}/s = ${(gw11 / serialLimit).toFixed(2)} of it`,
);
const machine = `${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}, node ${process.version}, ${pin ? 'broker on CPU 0, load generator on CPU 1' : 'not pinned'}, ${SECONDS} s per cell, ${REPS} rep(s)`;
lines.push(`machine: ${machine}; took ${((Date.now() - startedAt) / 1000).toFixed(0)} s`);
console.log(lines.join('\n'));
await writeFile(
  values.out,
  JSON.stringify({ machine, seconds: SECONDS, reps: REPS, results, memory, fsyncMs: fsync, serialLimit }, null, 2),
);
process.stderr.write(`results written to ${values.out}\n`);
