import { describe, expect, it } from 'vitest';
import { api } from '../helpers/api.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';
import { startMosquitto, subscribeUpstream } from '../helpers/mosquitto.js';

async function metric(httpUrl: string, pattern: RegExp): Promise<number> {
  const text = (await api(httpUrl).metrics()).body;
  const m = pattern.exec(text);
  return m ? Number(m[1]) : 0;
}
const fsyncs = (httpUrl: string) => metric(httpUrl, /^sensorgate_store_fsyncs_total (\d+)/m);
const syncedWrites = (httpUrl: string) =>
  metric(httpUrl, /^sensorgate_commit_write_seconds_count\{sync="true"\} (\d+)/m);

describe('store.commitIntervalMs and the shared fsync', () => {
  it('forwarding adds no fsync of its own: every synced write of the process is at most one per interval', async () => {
    const intervalMs = 250;
    const broker = await startMosquitto();
    const cloud = await subscribeUpstream(broker.url);
    const gw = await startTestGateway({
      config: {
        store: { commitIntervalMs: intervalMs },
        upstream: { enabled: true, url: broker.url, backoff: { baseMs: 50, capMs: 200, stableMs: 1000 } },
      },
    });
    const devices = await Promise.all(Array.from({ length: 20 }, (_, i) => connectDevice(gw.mqttUrl, `ci-${i}`)));
    await expect.poll(async () => (await api(gw.httpUrl).forwarding()).body.connected).toBe(true);
    const before = await fsyncs(gw.httpUrl);
    const started = performance.now();
    // Each device waits for its ack before the next reading: ten rounds, each behind at least one shared fsync.
    await Promise.all(
      devices.map(async (dev, i) => {
        for (let seq = 0; seq < 10; seq++) {
          await dev.publishAsync(telemetryTopic(`ci-${i}`), payload(reading(1, seq)), { qos: 1 });
        }
      }),
    );
    await expect.poll(() => cloud.received.length, { timeout: 15_000 }).toBe(200);
    const elapsed = performance.now() - started;
    const synced = (await fsyncs(gw.httpUrl)) - before;
    expect(synced).toBeGreaterThan(0);
    expect(synced).toBeLessThanOrEqual(Math.ceil(elapsed / intervalMs) + 1);
    // Acks wait for the shared fsync: ten sequential rounds cannot finish faster than ten intervals, less the first.
    expect(elapsed).toBeGreaterThanOrEqual(9 * intervalMs - 20);
    expect(await syncedWrites(gw.httpUrl)).toBe(await fsyncs(gw.httpUrl));
  });

  it('with syncWrites off, no write is reported as synced', async () => {
    const gw = await startTestGateway({ config: { store: { syncWrites: false } } });
    const dev = await connectDevice(gw.mqttUrl, 'nosync');
    for (let seq = 0; seq < 5; seq++) {
      await dev.publishAsync(telemetryTopic('nosync'), payload(reading(1, seq)), { qos: 1 });
    }
    expect(await metric(gw.httpUrl, /^sensorgate_commit_write_seconds_count\{sync="false"\} (\d+)/m)).toBeGreaterThan(
      0,
    );
    expect(await syncedWrites(gw.httpUrl)).toBe(0);
    expect(await fsyncs(gw.httpUrl)).toBe(0);
  });
});
