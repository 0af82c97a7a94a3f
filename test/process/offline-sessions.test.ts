import { join } from 'node:path';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { api } from '../helpers/api.js';
import { spawnGateway, waitReady } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('many offline persistent sessions', () => {
  it('take every reading inside a 160 MB heap, their queues bounded', async () => {
    const dir = await tempDir();
    const gw = spawnGateway(['start', '--data-dir', join(dir, 'data'), '--mqtt-port', '0', '--http-port', '0'], {
      SENSORGATE_LOG_LEVEL: 'warn',
      NODE_OPTIONS: '--max-old-space-size=160',
    });
    const ready = await waitReady(gw);
    const url = `mqtt://127.0.0.1:${ready.mqtt.port}`;
    for (let i = 0; i < 200; i++) {
      const c = await mqtt.connectAsync(url, { clientId: `offline-${i}`, clean: false, reconnectPeriod: 0 });
      await c.subscribeAsync('sensors/#', { qos: 1 });
      await c.endAsync();
    }
    const devices = await Promise.all(
      Array.from({ length: 10 }, (_, i) => mqtt.connectAsync(url, { clientId: `d-${i}`, reconnectPeriod: 0 })),
    );
    await Promise.all(
      devices.map(async (c, i) => {
        for (let seq = 0; seq < 200; seq++) {
          const body = JSON.stringify({ v: 1, boot: 1, seq, ts: 1_700_000_000_000 + seq, m: { temp_c: 20 } });
          await c.publishAsync(`sensors/d-${i}/telemetry`, body, { qos: 1 });
        }
      }),
    );
    await Promise.all(devices.map((c) => c.endAsync()));
    expect(gw.child.exitCode).toBe(null);
    const http = `http://127.0.0.1:${ready.http.port}`;
    expect((await api(http).stats()).body.qos1.stored).toBe(2000);
    // The default limit (1000 per offline session) is reached by 2000 readings: the rest were dropped and counted.
    expect((await api(http).metrics()).body).toMatch(/sensorgate_limit_exceeded_total\{limit="session_queue"\} 200000/);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
  });
});
