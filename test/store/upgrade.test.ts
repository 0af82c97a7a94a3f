import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { api, deviceView, readingsOf } from '../helpers/api.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';
import { startMosquitto, subscribeUpstream } from '../helpers/mosquitto.js';
import { tempDir } from '../helpers/temp-dir.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'store-0.1.0', 'data');

/** The fixture's readings: boot 3, sequences 0–4 (test/fixtures/store-0.1.0/README.md). */
const fixtureReading = (seq: number) => ({ boot: 3, seq, ts: 1_780_000_000_000 + seq * 5000 });

describe('a data directory written by release 0.1.0', () => {
  it('opens with every reading, the dedup state, the dead letter, the retained message and the outbox', async () => {
    const dataDir = await tempDir();
    await cp(FIXTURE, dataDir, { recursive: true });
    const broker = await startMosquitto();
    const cloud = await subscribeUpstream(broker.url);
    const gw = await startTestGateway({
      dataDir,
      config: { upstream: { enabled: true, url: broker.url, backoff: { baseMs: 50, capMs: 200, stableMs: 1000 } } },
    });

    for (const id of ['st-0', 'st-1', 'st-2']) {
      expect((await readingsOf(gw.httpUrl, id)).map((r) => r.seq)).toEqual([0, 1, 2, 3, 4]);
    }
    expect((await readingsOf(gw.httpUrl, 'st-2'))[4]).toMatchObject({ ...fixtureReading(4), qos: 2 });
    expect((await api(gw.httpUrl).deadLetters()).body.deadLetters).toHaveLength(1);

    // The QoS 1/2 readings left in the outbox go upstream.
    await expect.poll(() => cloud.received.length, { timeout: 15_000 }).toBe(10);
    expect(new Set(cloud.received.map((r) => `${r.body.deviceId}/${r.body.seq}`)).size).toBe(10);

    // The dedup state came through: a re-send of a stored sequence is a duplicate, the next one is stored.
    const dev = await connectDevice(gw.mqttUrl, 'st-1');
    const again = { ...reading(3, 4), ...fixtureReading(4) };
    await dev.publishAsync(telemetryTopic('st-1'), payload(again), { qos: 1 });
    await dev.publishAsync(telemetryTopic('st-1'), payload({ ...again, seq: 5, ts: again.ts + 5000 }), { qos: 1 });
    const st1 = await deviceView(gw.httpUrl, 'st-1');
    expect(st1?.counters.qos1).toMatchObject({ stored: 6, duplicate: 1 });

    const sub = await connectDevice(gw.mqttUrl, 'reader');
    const retained = new Promise<string>((resolve) => sub.once('message', (_t, body) => resolve(body.toString())));
    await sub.subscribeAsync('sensors/st-1/status', { qos: 1 });
    expect(await retained).toBe('online');
  });
});
