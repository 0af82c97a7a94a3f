import { describe, expect, it } from 'vitest';
import { startAedesUpstream } from '../helpers/aedes-upstream.js';
import { api, readingsOf } from '../helpers/api.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';

const DAY = 86_400_000;

async function deleted(httpUrl: string, reason: string): Promise<number> {
  const text = (await api(httpUrl).metrics()).body;
  return Number(
    new RegExp(`^sensorgate_retention_deleted_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0,
  );
}

async function held(httpUrl: string): Promise<number> {
  const text = (await api(httpUrl).metrics()).body;
  return Number(/^sensorgate_retention_held_total (\d+)/m.exec(text)?.[1] ?? 0);
}

describe('retention', () => {
  it('deletes readings older than maxAgeDays in the background and shows each device horizon', async () => {
    const gw = await startTestGateway({ config: { retention: { maxAgeDays: 1, intervalMs: 100 } } });
    const now = Date.now();
    const old = await connectDevice(gw.mqttUrl, 'old');
    const fresh = await connectDevice(gw.mqttUrl, 'fresh');
    for (let seq = 0; seq < 10; seq++) {
      await old.publishAsync(telemetryTopic('old'), payload(reading(1, seq, { ts: now - 3 * DAY + seq })), { qos: 1 });
    }
    for (let seq = 0; seq < 5; seq++) {
      await fresh.publishAsync(telemetryTopic('fresh'), payload(reading(1, seq, { ts: now - DAY / 2 + seq })), {
        qos: 1,
      });
    }
    await expect.poll(() => deleted(gw.httpUrl, 'age'), { timeout: 10_000 }).toBe(10);
    expect(await readingsOf(gw.httpUrl, 'old')).toEqual([]);
    expect((await readingsOf(gw.httpUrl, 'fresh')).map((r) => r.seq)).toEqual([0, 1, 2, 3, 4]);

    const devices = (await api(gw.httpUrl).devices()).body.devices;
    expect(devices.find((d) => d.id === 'fresh')?.oldestTs).toBe(now - DAY / 2);
    expect(devices.find((d) => d.id === 'old')?.oldestTs).toBeNull();
    const { storage } = (await api(gw.httpUrl).stats()).body;
    expect(storage.horizonTs).toBeGreaterThan(now - 1.1 * DAY);
    expect(storage.retention).toEqual({ maxAgeDays: 1, maxBytes: null });
    expect(storage.bytes).toBeGreaterThan(0);
  });

  it('keeps the files under maxBytes by deleting the oldest readings, and the space really returns', async () => {
    const maxBytes = 2 * 1024 * 1024;
    const gw = await startTestGateway({ config: { retention: { maxBytes, intervalMs: 200 } } });
    const m = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`probe_${i}`, Math.random()]));
    const start = Date.now() - 10 * DAY;
    const devices = await Promise.all(['s0', 's1', 's2'].map((id) => connectDevice(gw.mqttUrl, id)));
    // About 1.7 KB a reading stored: 3000 of them are well over 2 MiB.
    await Promise.all(
      devices.map(async (dev, d) => {
        for (let seq = 0; seq < 1000; seq++) {
          const r = reading(1, seq, { ts: start + seq * 60_000, m });
          await dev.publishAsync(telemetryTopic(`s${d}`), payload(r), { qos: 1 });
        }
      }),
    );
    await expect.poll(() => deleted(gw.httpUrl, 'size'), { timeout: 20_000 }).toBeGreaterThan(0);
    await expect
      .poll(async () => (await api(gw.httpUrl).stats()).body.storage.bytes, { timeout: 20_000 })
      .toBeLessThanOrEqual(maxBytes);
    // The newest readings of every device are kept, the oldest went.
    for (const id of ['s0', 's1', 's2']) {
      const kept = (await readingsOf(gw.httpUrl, id, '?limit=10000')).map((r) => r.seq);
      expect(kept.at(-1)).toBe(999);
      expect(kept[0]).toBeGreaterThan(0);
    }
  });

  it('holds back at readings not forwarded yet (the outbox names them), counts that, and deletes them once forwarded', async () => {
    let open = false;
    const upstream = await startAedesUpstream({ authenticate: (_client, _user, _pass, done) => done(null, open) });
    const gw = await startTestGateway({
      config: {
        retention: { maxAgeDays: 1, intervalMs: 100 },
        upstream: { enabled: true, url: upstream.url, backoff: { baseMs: 20, capMs: 100, stableMs: 1000 } },
      },
    });
    const now = Date.now();
    const dev = await connectDevice(gw.mqttUrl, 'old');
    for (let seq = 0; seq < 10; seq++) {
      await dev.publishAsync(telemetryTopic('old'), payload(reading(1, seq, { ts: now - 3 * DAY + seq })), { qos: 1 });
    }
    await expect.poll(() => held(gw.httpUrl), { timeout: 10_000 }).toBeGreaterThan(0);
    expect(await deleted(gw.httpUrl, 'age')).toBe(0);
    expect(await readingsOf(gw.httpUrl, 'old')).toHaveLength(10);

    open = true;
    await expect.poll(() => deleted(gw.httpUrl, 'age'), { timeout: 10_000 }).toBe(10);
    expect((await api(gw.httpUrl).forwarding()).body.backlog.readings).toBe(0);
  });
});
