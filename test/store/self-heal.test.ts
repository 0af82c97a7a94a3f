import { cp, readdir, readFile, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api } from '../helpers/api.js';
import { startTestGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/temp-dir.js';

const READINGS = 3000;

/** A real data dir: the gateway stores READINGS readings, then LevelDB compacts them into table files. */
async function realDataDir(): Promise<string> {
  const gw = await startTestGateway();
  const dev = await connectDevice(gw.mqttUrl, 'heal');
  for (let start = 0; start < READINGS; start += 500) {
    await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        dev.publishAsync(telemetryTopic('heal'), payload(reading(1, start + i)), { qos: 1 }),
      ),
    );
  }
  await dev.endAsync();
  await gw.close();
  const db = new ClassicLevel(gw.dataDir);
  await db.open();
  await db.compactRange('\x00', '\xff');
  await db.close();
  return gw.dataDir;
}

async function damagedCopy(source: string, damage: (dir: string, files: string[]) => Promise<void>): Promise<string> {
  const dir = join(await tempDir(), 'data');
  await cp(source, dir, { recursive: true });
  await damage(dir, await readdir(dir));
  return dir;
}

async function startAndCount(dataDir: string) {
  // Damage comes with a crash, which leaves the store marked open; these copies were closed, so ask for the scan.
  const gw = await startTestGateway({ dataDir, config: { store: { verifyOnStart: 'always' } } });
  expect((await api(gw.httpUrl).health()).status).toBe(200);
  const readings = (await api(gw.httpUrl).readings('heal', '?limit=10000')).body.readings.length;
  const metrics = (await api(gw.httpUrl).metrics()).body;
  const lostBytes = Number(/sensorgate_store_repair_lost_bytes (\d+)/.exec(metrics)?.[1]);
  // The gateway goes on taking readings after the repair.
  const dev = await connectDevice(gw.mqttUrl, 'after');
  await dev.publishAsync(telemetryTopic('after'), payload(reading(1, 0)), { qos: 1 });
  return { readings, lostBytes };
}

describe('self-healing storage', () => {
  it('starts on a damaged data dir in every way we know, keeping what is readable and moving the rest aside', {
    timeout: 60_000,
  }, async () => {
    const source = await realDataDir();
    const tables = (await readdir(source)).filter((f) => f.endsWith('.ldb'));
    expect(tables.length).toBeGreaterThan(0);

    // A torn last write: the tail of the write-ahead log is cut off mid-record.
    const torn = await damagedCopy(source, async (dir, files) => {
      const log = join(dir, files.find((f) => f.endsWith('.log')) as string);
      await truncate(log, Math.max(0, (await stat(log)).size - 10));
    });
    const tornResult = await startAndCount(torn);
    expect(tornResult.readings).toBeGreaterThanOrEqual(READINGS - 1);

    // A table file with corrupted bytes in the middle.
    const corrupted = await damagedCopy(source, async (dir) => {
      const file = join(dir, tables[0] as string);
      const bytes = await readFile(file);
      bytes.fill(0x55, Math.floor(bytes.length / 3), Math.floor(bytes.length / 3) + 2000);
      await writeFile(file, bytes);
    });
    const corruptedResult = await startAndCount(corrupted);
    expect(corruptedResult.readings).toBeGreaterThan(0);
    expect(corruptedResult.readings).toBeLessThan(READINGS);
    expect(corruptedResult.lostBytes).toBeGreaterThan(0);
    expect(await readdir(join(corrupted, 'lost'))).not.toEqual([]);

    // A truncated table file.
    const truncated = await damagedCopy(source, async (dir) => {
      await truncate(join(dir, tables[0] as string), 100);
    });
    const truncatedResult = await startAndCount(truncated);
    expect(truncatedResult.lostBytes).toBeGreaterThan(0);

    // A missing manifest: nothing is lost, RepairDB rebuilds it from the table files.
    const noManifest = await damagedCopy(source, async (dir, files) => {
      for (const f of files.filter((name) => name.startsWith('MANIFEST-'))) await unlink(join(dir, f));
    });
    const noManifestResult = await startAndCount(noManifest);
    expect(noManifestResult.readings).toBe(READINGS);
  });
});
