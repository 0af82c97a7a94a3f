import { execFileSync } from 'node:child_process';
import { statfs, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api } from '../helpers/api.js';
import { startTestGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/temp-dir.js';

const MB = 1024 * 1024;

/** A real small filesystem for the data dir: a 16 MiB tmpfs mounted for this test (needs root, as CI has). */
async function smallFilesystem(): Promise<string> {
  const mountPoint = await tempDir('sensorgate-tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mountPoint]);
  onTestFinished(() => void execFileSync('umount', [mountPoint]));
  return mountPoint;
}

async function free(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

describe('disk full', () => {
  it('stops acking QoS 1/2 when free space drops below the reserve, loses nothing, and resumes when space returns', async () => {
    const fs = await smallFilesystem();
    const gw = await startTestGateway({
      dataDir: join(fs, 'data'),
      config: { store: { minFreeBytes: 4 * MB, diskCheckMs: 20 } },
    });
    const dev = await connectDevice(gw.mqttUrl, 'disk', { reconnectPeriod: 50 });
    const stored = async () => (await api(gw.httpUrl).readings('disk')).body.readings.length;
    await dev.publishAsync(telemetryTopic('disk'), payload(reading(1, 0)), { qos: 1 });

    // Fill the filesystem to 1 MiB below the reserve.
    const filler = join(fs, 'filler');
    await writeFile(filler, Buffer.alloc((await free(fs)) - 3 * MB));
    await expect.poll(async () => (await api(gw.httpUrl).health()).status).toBe(503);
    expect((await api(gw.httpUrl).health()).body.reason).toMatch(/disk nearly full/);

    let acked = false;
    const closed = new Promise<void>((resolve) => dev.once('close', () => resolve()));
    const pending = dev
      .publishAsync(telemetryTopic('disk'), payload(reading(1, 1)), { qos: 1 })
      .then(() => (acked = true));
    await closed;
    expect(acked).toBe(false);
    expect(await stored()).toBe(1);

    await unlink(filler);
    await pending;
    expect(await stored()).toBe(2);
    expect((await api(gw.httpUrl).health()).status).toBe(200);
    const metrics = (await api(gw.httpUrl).metrics()).body;
    expect(Number(/sensorgate_disk_free_bytes (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(4 * MB);
  });
});

describe('disk full under a QoS 0 flood', () => {
  it('drops QoS 0 readings and retained messages at the reserve instead of filling the disk, then acks QoS 1 again', async () => {
    const fs = await smallFilesystem();
    const gw = await startTestGateway({
      dataDir: join(fs, 'data'),
      config: { store: { minFreeBytes: 3 * MB, diskCheckMs: 20 } },
    });
    // Space that can be given back later.
    const filler = join(fs, 'filler');
    await writeFile(filler, Buffer.alloc(4 * MB));
    const dev = await connectDevice(gw.mqttUrl, 'flood');
    const m = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`probe_${i}`, i + 0.5]));
    const metric = async (re: RegExp) => Number(re.exec((await api(gw.httpUrl).metrics()).body)?.[1] ?? 0);
    const dropped = () => metric(/^sensorgate_disk_full_dropped_total\{what="qos0"\} (\d+)/m);
    // About 1.7 KB a reading: far more than the 16 MiB filesystem holds.
    for (let seq = 0; (await dropped()) < 100; seq++) {
      if (seq > 20_000) throw new Error('the flood never reached the reserve');
      const burst = Array.from({ length: 200 }, (_, k) =>
        dev.publishAsync(telemetryTopic('flood'), payload(reading(1, seq * 200 + k, { m })), { qos: 0 }),
      );
      await Promise.all(burst);
    }
    expect(await free(fs)).toBeGreaterThan(MB);
    expect(await metric(/^sensorgate_store_write_failures_total (\d+)/m)).toBe(0);
    // LevelDB's compactions may have given some space back since: hold the disk just below the reserve again.
    const holder = join(fs, 'holder');
    await writeFile(holder, Buffer.alloc(Math.max(0, (await free(fs)) - 2 * MB)));
    await expect.poll(async () => (await api(gw.httpUrl).health()).body.reason).toMatch(/disk nearly full/);

    // A retained status message would be written too: refused while the disk is full.
    const other = await connectDevice(gw.mqttUrl, 'status-writer');
    const closed = new Promise<void>((resolve) => other.once('close', () => resolve()));
    other.publish('sensors/flood/status', 'online', { qos: 1, retain: true });
    await closed;
    expect(await metric(/^sensorgate_disk_full_dropped_total\{what="broker"\} (\d+)/m)).toBe(1);

    await unlink(filler);
    await unlink(holder);
    await expect.poll(async () => (await api(gw.httpUrl).health()).status).toBe(200);
    const ack = await connectDevice(gw.mqttUrl, 'after');
    await ack.publishAsync(telemetryTopic('after'), payload(reading(1, 0)), { qos: 1 });
    expect((await api(gw.httpUrl).readings('after')).body.readings).toHaveLength(1);
  });
});
