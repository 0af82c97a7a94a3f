/**
 * Where a durable reading's CPU goes, without the broker and the network: the ingest path built up stage by stage in
 * one process, every stage fed the same pre-encoded CBOR readings, so the differences between rows are the cost of
 * each stage. Run it pinned to one core to compare with `npm run bench` (the broker there has one core):
 *   taskset -c 0 node dist/bench/ingest-path.js [--devices 10] [--burst 34] [--readings 200000]
 * `--burst` is how many readings arrive together (one socket read's worth); the group commit turns what arrives while
 * a batch is written into the next batch, as it does in the gateway.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClassicLevel } from 'classic-level';
import { loadConfig } from '../gateway/config.js';
import { createLogger } from '../gateway/shared/log.js';
import { createMetrics } from '../gateway/metrics.js';
import { Committer } from '../gateway/shared/group-commit.js';
import { LevelStore } from '../gateway/store/level-store.js';
import type { TelemetryStore } from '../gateway/ingest/store-port.js';
import { classify, type DedupState } from '../gateway/domain/dedup.js';
import { createIngest } from '../gateway/ingest/ingest.js';
import { decodePayload, decodeReading, encodeReading, type Reading } from '../gateway/domain/wire.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '10' },
    burst: { type: 'string', default: '34' },
    readings: { type: 'string', default: '200000' },
  },
});
const DEVICES = Number(values.devices);
const BURST = Number(values.burst);
const N = Number(values.readings);
const MAX_BYTES = 4096;

const deviceIds = Array.from({ length: DEVICES }, (_, i) => `bench-${i}`);
const payloads: Buffer[] = [];
const devOf: string[] = [];
for (let i = 0; i < N; i++) {
  const d = i % DEVICES;
  const r: Reading = {
    v: 1,
    boot: 1,
    seq: Math.floor(i / DEVICES) + 1,
    ts: 1_764_000_000_000 + i,
    m: { temp_c: 21.5 + (i % 7) / 10, rh_pct: 55.2, pres_hpa: 1013.2, wind_ms: 3.4, batt_v: 3.9 },
  };
  payloads.push(encodeReading(r, 'cbor'));
  devOf.push(deviceIds[d] as string);
}

interface Row {
  stage: string;
  rate: number;
  cpuUs: number;
}
const rows: Row[] = [];

/** Runs all N readings through `run` and records the rate and the process's CPU time (every thread) per reading. */
async function timed(stage: string, run: () => void | Promise<void>): Promise<void> {
  const cpu = process.cpuUsage();
  const t = performance.now();
  await run();
  const wall = performance.now() - t;
  const used = process.cpuUsage(cpu);
  rows.push({ stage, rate: (N / wall) * 1000, cpuUs: (used.user + used.system) / N });
}

async function measureSync(stage: string, fn: (i: number) => void): Promise<void> {
  for (let i = 0; i < Math.min(N, 20_000); i++) fn(i);
  await timed(stage, () => {
    for (let i = 0; i < N; i++) fn(i);
  });
}

await measureSync('decode (cbor-x)', (i) => decodePayload(payloads[i] as Buffer, MAX_BYTES));
await measureSync('decode + validate (zod)', (i) =>
  decodeReading(payloads[i] as Buffer, devOf[i] as string, { maxBytes: MAX_BYTES }),
);
const states = new Map<string, DedupState | null>();
await measureSync('decode + validate + dedup', (i) => {
  const id = devOf[i] as string;
  const r = decodeReading(payloads[i] as Buffer, id, { maxBytes: MAX_BYTES });
  if (r.ok) states.set(id, classify(states.get(id) ?? null, r.value.boot, r.value.seq, 1024).state);
});

const log = createLogger('silent', false);
const newMetrics = () =>
  createMetrics({
    backlog: () => ({ readings: 0, bytes: 0, full: false }),
    diskFreeBytes: () => 0,
    repairLostBytes: () => 0,
    outboxDangling: () => 0,
    stations: async () => [],
    storeBytes: async () => 0,
  });

/** Feeds every reading through ingest.accept, BURST at a time, three bursts in flight (like devices with W > 1). */
async function runIngest(stage: string, store: TelemetryStore, syncWrites: boolean): Promise<void> {
  const ingest = await createIngest({
    store,
    options: {
      ...loadConfig({}).ingest,
      maxPayloadBytes: MAX_BYTES,
      maxBatch: 1024,
      syncWrites,
      outbox: false,
      deadLetters: loadConfig({}).deadLetters,
    },
    log,
    metrics: newMetrics(),
    now: Date.now,
  });
  let sent = 0;
  await timed(
    stage,
    () =>
      new Promise<void>((resolve, reject) => {
        let open = 0;
        const burst = () => {
          if (sent >= N) {
            if (open === 0) resolve();
            return;
          }
          const waits: Promise<void>[] = [];
          for (let k = 0; k < BURST && sent < N; k++, sent++) {
            const id = devOf[sent] as string;
            const { done } = ingest.receive(
              { topic: `sensors/${id}/telemetry`, payload: payloads[sent] as Buffer, qos: 1, clientId: id },
              { kind: 'telemetry', deviceId: id },
            );
            if (done) waits.push(done);
          }
          open++;
          Promise.all(waits).then(() => {
            open--;
            burst();
          }, reject);
        };
        for (let k = 0; k < 3; k++) burst();
      }),
  );
  await ingest.drain();
}

// A store whose write does nothing: the ingest's own work (records, counters, group commit, metrics) without storage.
const nullCommitter = new Committer<null>({
  newBatch: () => null,
  write: () => new Promise((resolve) => setImmediate(resolve)),
  intervalMs: 0,
});
const nullStore: TelemetryStore = {
  loadDevices: async () => ({ records: [], unreadable: 0 }),
  lastGseq: async () => 0,
  commitLane: (hooks) => nullCommitter.lane({ stage: () => undefined, ...hooks }),
  readings: async () => ({ items: [], next: null }),
  deadLetters: async () => [],
  pruneDeadLetters: async () => 0,
  close: async () => undefined,
};
await runIngest('ingest, storage a no-op', nullStore, true);

for (const sync of [false, true]) {
  const dir = await mkdtemp(join(tmpdir(), 'sensorgate-ingest-path-'));
  const { store } = await LevelStore.open(dir, { verify: 'never' });
  try {
    await runIngest(sync ? 'ingest + LevelDB, synced (the default)' : 'ingest + LevelDB, no fsync', store, sync);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// The storage floor: the same bytes in sync batches of the same size, no decoding, no dedup, no device records.
{
  const dir = await mkdtemp(join(tmpdir(), 'sensorgate-ingest-path-'));
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  await timed('raw payloads in LevelDB sync batches only', async () => {
    for (let i = 0; i < N; i += BURST * 3) {
      const batch = db.batch();
      for (let k = i; k < Math.min(N, i + BURST * 3); k++)
        batch.put(`${devOf[k]}!${String(k).padStart(14, '0')}`, payloads[k] as Buffer);
      await batch.write({ sync: true });
    }
  });
  await db.close();
  await rm(dir, { recursive: true, force: true });
}

const lines = [
  `ingest path, ${N} CBOR readings (${payloads[0]?.length} bytes) from ${DEVICES} devices, bursts of ${BURST}, 3 bursts in flight`,
  '',
  '| stage | readings/s | CPU µs per reading (all threads) |',
  '|---|---:|---:|',
  ...rows.map((r) => `| ${r.stage} | ${r.rate.toFixed(0)} | ${r.cpuUs.toFixed(1)} |`),
];
process.stdout.write(`${lines.join('\n')}\n`);
