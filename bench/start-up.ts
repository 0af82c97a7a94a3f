/**
 * `npm run bench:start-up`: how long the gateway takes from spawn to its ready line on a large store.
 *   node dist/bench/start-up.js [--mb 1024]
 * Fills a store with readings (200-byte values that do not compress) until its files hold `mb` MB, then starts the
 * gateway on it three ways: after a clean shutdown (the default verifyOnStart: unclean skips the scan), after a
 * SIGKILL (the scan runs), and with verifyOnStart: always (what 0.1.0 did on every start).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ClassicLevel } from 'classic-level';
import { startGatewayProcess } from '../launch/server-process.js';

const { values } = parseArgs({ options: { mb: { type: 'string', default: '1024' } } });
const TARGET = Number(values.mb) * 1024 * 1024;

async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  // A compaction may delete a file between the listing and its stat.
  for (const f of await readdir(dir)) total += (await stat(join(dir, f)).catch(() => ({ size: 0 }))).size;
  return total;
}

const dir = await mkdtemp(join(tmpdir(), 'sensorgate-start-up-'));
const dataDir = join(dir, 'data');
const db = new ClassicLevel<string, Uint8Array>(dataDir, { keyEncoding: 'utf8', valueEncoding: 'view' });
await db.open();
let n = 0;
const filling = performance.now();
while ((await sizeOf(dataDir)) < TARGET) {
  const batch = db.batch();
  for (let i = 0; i < 10_000; i++, n++) {
    const device = `st-${n % 200}`;
    batch.put(
      `!readings!${device}!${n.toString(16).padStart(14, '0')}!${n.toString(16).padStart(14, '0')}`,
      randomBytes(200),
    );
  }
  await batch.write();
}
await db.close();
const size = await sizeOf(dataDir);
console.log(
  `store: ${n} readings, ${(size / 1024 / 1024).toFixed(0)} MB, filled in ${((performance.now() - filling) / 1000).toFixed(0)} s`,
);

async function timeToReady(config: object, kill: boolean): Promise<number> {
  const file = join(dir, 'gateway.yaml');
  await writeFile(file, JSON.stringify(config));
  const started = performance.now();
  const gw = await startGatewayProcess([
    '--config',
    file,
    '--data-dir',
    dataDir,
    '--mqtt-port',
    '0',
    '--http-port',
    '0',
  ]);
  const ms = performance.now() - started;
  await (kill ? gw.kill() : gw.stop());
  return ms;
}

// The first start opens a store that was never marked open: a clean one.
const clean = await timeToReady({}, true);
const afterCrash = await timeToReady({}, false);
const always = await timeToReady({ store: { verifyOnStart: 'always' } }, false);
console.log('| start | spawn to ready, s |');
console.log('| --- | ---: |');
console.log(`| after a clean shutdown (verifyOnStart: unclean, the default) | ${(clean / 1000).toFixed(1)} |`);
console.log(`| after a SIGKILL (the scan runs) | ${(afterCrash / 1000).toFixed(1)} |`);
console.log(`| verifyOnStart: always (0.1.0 on every start) | ${(always / 1000).toFixed(1)} |`);
await rm(dir, { recursive: true, force: true });
