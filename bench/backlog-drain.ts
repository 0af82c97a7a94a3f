/**
 * How long a backlog takes to drain upstream. Builds a backlog of N QoS 1 readings while the upstream Mosquitto is
 * down (the gateway acks them from its durable outbox), starts Mosquitto, and times until the outbox is empty.
 *   node dist/bench/backlog-drain.js [--readings 100000] [--rate 500] [--batch 1] [--inflight 20]
 * --rate is upstream.backfillRate (readings/s); a high value shows what the path itself can do.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { encodeReading } from '../gateway/domain/wire.js';
import { freePort, mosquittoProcess } from '../launch/mosquitto-process.js';
import { startGatewayProcess } from '../launch/server-process.js';

const { values } = parseArgs({
  options: {
    readings: { type: 'string', default: '100000' },
    rate: { type: 'string', default: '500' },
    batch: { type: 'string', default: '1' },
    inflight: { type: 'string', default: '20' },
  },
});
const total = Number(values.readings);
const PUBLISHERS = 50;
const WINDOW = 20;

const work = await mkdtemp(join(tmpdir(), 'sensorgate-drain-'));
await mkdir(join(work, 'mosquitto'));
const broker = await mosquittoProcess(join(work, 'mosquitto'), await freePort());
const config = join(work, 'gateway.yaml');
await writeFile(
  config,
  `upstream:\n  enabled: true\n  url: ${broker.url}\n  backfillRate: ${values.rate}\n  batchSize: ${values.batch}\n  inflight: ${values.inflight}\n  backoff: { baseMs: 100, capMs: 500, stableMs: 5000 }\n  backlogBudgetBytes: 4294967296\n`,
);
const gateway = await startGatewayProcess([
  '--config',
  config,
  '--data-dir',
  join(work, 'data'),
  '--mqtt-port',
  '0',
  '--http-port',
  '0',
]);
try {
  const api = `http://127.0.0.1:${gateway.httpPort}/api/v1/forwarding`;
  const status = async () => (await (await fetch(api)).json()) as { connected: boolean; backlog: { readings: number } };

  const t0 = performance.now();
  let next = 0;
  const clients = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, i) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.mqttPort}`, { clientId: `drain-${i}` }),
    ),
  );
  await Promise.all(
    clients.flatMap((c, i) =>
      Array.from({ length: WINDOW }, async () => {
        while (next < total) {
          const seq = next++;
          const body = encodeReading(
            { v: 1, boot: 1, seq, ts: Date.now(), m: { temp_c: 20, rh_pct: 50, pres_hpa: 1000 } },
            'cbor',
          );
          await c.publishAsync(`sensors/drain-${i}/telemetry`, body, { qos: 1 });
        }
      }),
    ),
  );
  await Promise.all(clients.map((c) => c.endAsync()));
  const ingestS = (performance.now() - t0) / 1000;
  const built = (await status()).backlog.readings;

  await broker.start();
  const t1 = performance.now();
  let last = built;
  while (last > 0) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    last = (await status()).backlog.readings;
  }
  const drainS = (performance.now() - t1) / 1000;
  console.log(
    `backlog ${built} readings (ingested in ${ingestS.toFixed(1)} s); backfillRate ${values.rate}/s, batch ${values.batch}, inflight ${values.inflight}`,
  );
  console.log(`drained in ${drainS.toFixed(1)} s: ${(built / drainS).toFixed(0)} readings/s`);
} finally {
  await gateway.stop();
  await broker.stop();
  await rm(work, { recursive: true, force: true });
}
