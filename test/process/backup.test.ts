import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { api, deviceView, readingsOf } from '../helpers/api.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';
import { GATEWAY_MAIN } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

function cli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    let stderr = '';
    const child = spawn(process.execPath, [GATEWAY_MAIN, ...args]);
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('backup and restore', () => {
  it('copies the store of a running gateway under load, and the copy restores with readings and dedup state', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'bk');
    for (let seq = 0; seq < 200; seq++)
      await dev.publishAsync(telemetryTopic('bk'), payload(reading(1, seq)), { qos: 1 });
    // Readings keep arriving while the backup runs: it must still be one consistent snapshot.
    let more = 200;
    let stop = false;
    const writer = (async () => {
      while (!stop) await dev.publishAsync(telemetryTopic('bk'), payload(reading(1, more++)), { qos: 1 });
    })();
    const dir = await tempDir();
    const backupDir = join(dir, 'backup');
    const port = new URL(gw.httpUrl).port;
    const made = await cli(['backup', backupDir, '--http-port', port]);
    stop = true;
    await writer;
    expect(made.code).toBe(0);
    expect(made.stderr).toMatch(/backup of \d+ records written/);
    await gw.close();

    const dataDir = join(dir, 'restored');
    const restored = await cli(['restore', backupDir, '--data-dir', dataDir]);
    expect(restored.code).toBe(0);
    expect((await cli(['restore', backupDir, '--data-dir', dataDir])).code).toBe(2);

    const back = await startTestGateway({ dataDir });
    const seqs = (await readingsOf(back.httpUrl, 'bk', '?limit=10000')).map((r) => r.seq);
    // Every reading acked before the backup started, and then a gapless prefix of the later ones (a snapshot).
    expect(seqs.length).toBeGreaterThanOrEqual(200);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i));
    const device = await deviceView(back.httpUrl, 'bk');
    expect(device?.highSeq).toBe(seqs.length - 1);
    expect(device?.counters.qos1.stored).toBe(seqs.length);

    const again = await connectDevice(back.mqttUrl, 'bk');
    await again.publishAsync(telemetryTopic('bk'), payload(reading(1, 5)), { qos: 1 });
    expect((await deviceView(back.httpUrl, 'bk'))?.counters.qos1.duplicate).toBe(1);
    expect((await api(back.httpUrl).health()).status).toBe(200);
  });
});
