/**
 * A simple ingest-rate probe (issue 6 brings the real benchmark): spawns the built gateway on a temporary data dir
 * with its defaults (durability on), connects P MQTT.js publishers that each keep W QoS 1 (or 2) readings in flight,
 * and prints readings acked per second. Usage:
 *   node dist/bench/ingest-rate.js [--publishers 1,50] [--inflight 1] [--seconds 5] [--qos 1]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { encodeReading } from '../gateway/telemetry/wire.js';

const { values } = parseArgs({
  options: {
    publishers: { type: 'string', default: '1,50' },
    inflight: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '5' },
    qos: { type: 'string', default: '1' },
  },
});
const inflight = Number(values.inflight);
const seconds = Number(values.seconds);
const qos = Number(values.qos) as 1 | 2;

async function run(publishers: number): Promise<{ rate: number; p50: number; p99: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'sensorgate-bench-'));
  const child = spawn(process.execPath, ['dist/gateway/main.js', 'start', '--data-dir', dir, '--mqtt-port', '0', '--http-port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SENSORGATE_LOG_LEVEL: 'warn' },
  });
  try {
    let port = 0;
    for await (const line of createInterface({ input: child.stdout })) {
      const e = JSON.parse(line) as { event: string; mqtt: { port: number } };
      if (e.event === 'ready') {
        port = e.mqtt.port;
        break;
      }
    }
    const clients = await Promise.all(
      Array.from({ length: publishers }, (_, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `bench-${i}` })),
    );
    const latencies: number[] = [];
    let acked = 0;
    const end = performance.now() + seconds * 1000;
    await Promise.all(
      clients.flatMap((c, i) =>
        Array.from({ length: inflight }, async (_, lane) => {
          let seq = lane;
          while (performance.now() < end) {
            const body = encodeReading({ v: 1, boot: 1, seq, ts: Date.now(), m: { temp_c: 21.5, rh_pct: 40, pres_hpa: 1013 } }, 'cbor');
            const t0 = performance.now();
            await c.publishAsync(`sensors/bench-${i}/telemetry`, body, { qos });
            latencies.push(performance.now() - t0);
            acked++;
            seq += inflight;
          }
        }),
      ),
    );
    await Promise.all(clients.map((c) => c.endAsync()));
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
    return { rate: acked / seconds, p50: at(0.5), p99: at(0.99) };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    await rm(dir, { recursive: true, force: true });
  }
}

console.log(`qos=${qos} inflight/publisher=${inflight} seconds=${seconds}`);
console.log('publishers\treadings/s\tp50 ms\tp99 ms');
for (const p of values.publishers.split(',').map(Number)) {
  const r = await run(p);
  console.log(`${p}\t${r.rate.toFixed(0)}\t${r.p50.toFixed(2)}\t${r.p99.toFixed(2)}`);
}
