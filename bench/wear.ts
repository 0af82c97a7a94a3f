/**
 * `npm run bench:wear`: what a fleet costs the storage, for each commit interval, with and without forwarding.
 *   node dist/bench/wear.js [--stations 200] [--every 5000] [--seconds 60] [--intervals 0,200,1000,2000]
 * Each station is one MQTT connection sending one QoS 1 reading every `every` ms (random phase). Each setting gets a
 * fresh gateway process on a temp data dir (and, forwarding on, a fresh Mosquitto as the upstream). After one warm-up
 * period, for `seconds`:
 * - fsyncs/s: the gateway's own count (sensorgate_store_fsyncs_total: every synced LevelDB write, whoever asked);
 * - bytes written per reading by the gateway process (/proc/PID/io write_bytes: pages it dirtied, so each fsync's
 *   rewrite of the log's last page counts), and by the whole disk (/proc/diskstats: adds the filesystem journal, and
 *   whatever else the machine wrote meanwhile);
 * - the ack latency the stations saw (median and maximum) and the gateway's RSS at the end.
 * A short run writes LevelDB's log only: its memtable (4 MB) reaches a table file after about 100 000 readings.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { encodeReading } from '../gateway/domain/wire.js';
import { freePort, mosquittoProcess } from '../launch/mosquitto-process.js';
import { startGatewayProcess } from '../launch/server-process.js';
import { rssMb, writtenBytes } from './proc.js';

const { values } = parseArgs({
  options: {
    stations: { type: 'string', default: '200' },
    every: { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '60' },
    intervals: { type: 'string', default: '0,200,1000,2000' },
  },
});
const STATIONS = Number(values.stations);
const EVERY = Number(values.every);
const SECONDS = Number(values.seconds);
const INTERVALS = values.intervals.split(',').map(Number);

/** Sectors written (512 bytes each) on the block device holding `path`, from /proc/diskstats. */
async function diskWritten(path: string): Promise<number> {
  const { dev } = await stat(path);
  const major = Math.floor(dev / 256);
  const minor = dev % 256;
  for (const line of (await readFile('/proc/diskstats', 'utf8')).split('\n')) {
    const f = line.trim().split(/\s+/);
    if (Number(f[0]) === major && Number(f[1]) === minor) return Number(f[9]) * 512;
  }
  return Number.NaN;
}

async function fsyncCount(httpPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  return Number(/^sensorgate_store_fsyncs_total (\d+)/m.exec(text)?.[1] ?? 0);
}

interface Row {
  interval: number;
  forward: boolean;
  readings: number;
  fsyncsPerSecond: number;
  processBytesPerReading: number;
  diskBytesPerReading: number;
  ackMedianMs: number;
  ackMaxMs: number;
  rssMb: number;
}

async function run(interval: number, forward: boolean): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'sensorgate-wear-'));
  const upstream = forward ? await mosquittoProcess(dir, await freePort()) : null;
  await upstream?.start();
  const config = join(dir, 'gateway.yaml');
  await writeFile(
    config,
    JSON.stringify({
      store: { commitIntervalMs: interval },
      upstream: upstream ? { enabled: true, url: upstream.url } : { enabled: false },
    }),
  );
  const gw = await startGatewayProcess([
    '--config',
    config,
    '--data-dir',
    join(dir, 'data'),
    '--mqtt-port',
    '0',
    '--http-port',
    '0',
  ]);
  const pid = gw.proc.pid as number;
  const clients = await Promise.all(
    Array.from({ length: STATIONS }, (_, i) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: `wear-${i}`, reconnectPeriod: 0 }),
    ),
  );
  let measuring = false;
  let acked = 0;
  const latencies: number[] = [];
  const timers = clients.map((client, i) => {
    let seq = 0;
    const send = () => {
      const ts = Date.now();
      const body = encodeReading(
        { v: 1, boot: 1, seq: seq++, ts, m: { temp_c: 21.5, rh_pct: 48, bat_v: 3.9 } },
        'cbor',
      );
      const counted = measuring;
      const t0 = performance.now();
      client.publishAsync(`sensors/wear-${i}/telemetry`, body, { qos: 1 }).then(
        () => {
          if (!counted || !measuring) return;
          acked++;
          latencies.push(performance.now() - t0);
        },
        () => undefined,
      );
    };
    let timer: NodeJS.Timeout | undefined;
    const start = setTimeout(() => {
      send();
      timer = setInterval(send, EVERY);
    }, Math.random() * EVERY);
    return () => {
      clearTimeout(start);
      clearInterval(timer);
    };
  });
  const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  await wait(EVERY);
  const before = {
    process: await writtenBytes(pid),
    disk: await diskWritten(dir),
    fsyncs: await fsyncCount(gw.httpPort),
  };
  measuring = true;
  await wait(SECONDS * 1000);
  measuring = false;
  const after = {
    process: await writtenBytes(pid),
    disk: await diskWritten(dir),
    fsyncs: await fsyncCount(gw.httpPort),
  };
  const rss = await rssMb(pid);
  for (const stop of timers) stop();
  await Promise.all(clients.map((c) => c.endAsync()));
  await gw.stop();
  await upstream?.stop();
  await rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    interval,
    forward,
    readings: acked,
    fsyncsPerSecond: (after.fsyncs - before.fsyncs) / SECONDS,
    processBytesPerReading: (after.process - before.process) / acked,
    diskBytesPerReading: (after.disk - before.disk) / acked,
    ackMedianMs: latencies[Math.floor(latencies.length / 2)] ?? Number.NaN,
    ackMaxMs: latencies.at(-1) ?? Number.NaN,
    rssMb: rss,
  };
}

console.log(
  `wear: ${STATIONS} stations, one QoS 1 reading every ${EVERY} ms each, ${SECONDS} s per setting, data dir on ${tmpdir()}`,
);
console.log(
  '| store.commitIntervalMs | forwarding | readings acked | fsyncs/s | bytes written per reading (process) | (whole disk) | ack median / max ms | RSS MB |',
);
console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
const rows: Row[] = [];
for (const interval of INTERVALS) {
  for (const forward of [false, true]) {
    const r = await run(interval, forward);
    rows.push(r);
    console.log(
      `| ${r.interval} | ${r.forward ? 'on' : 'off'} | ${r.readings} | ${r.fsyncsPerSecond.toFixed(1)} | ${Math.round(r.processBytesPerReading)} | ${Math.round(r.diskBytesPerReading)} | ${r.ackMedianMs.toFixed(1)} / ${r.ackMaxMs.toFixed(0)} | ${r.rssMb.toFixed(0)} |`,
    );
  }
}
await writeFile('bench-wear.json', `${JSON.stringify(rows, null, 2)}\n`);
