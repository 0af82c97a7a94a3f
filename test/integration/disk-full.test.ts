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
