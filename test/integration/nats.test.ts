import { nanos } from 'nats';
import { describe, expect, it } from 'vitest';
import { api } from '../helpers/api.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/mosquitto.js';
import { natsClient, startNats, streamEntries } from '../helpers/nats.js';
import { tempDir } from '../helpers/temp-dir.js';

const natsConfig = (url: string, nats: Record<string, unknown> = {}) => ({
  gatewayId: 'gw-n',
  upstream: {
    enabled: true,
    kind: 'nats',
    url,
    backoff: { baseMs: 20, capMs: 200, stableMs: 1000 },
    nats: { duplicateWindowMs: 60_000, ...nats },
  },
});

describe('forwarding into NATS JetStream (nats-server from Debian)', () => {
  it('puts every QoS 1 and 2 reading into the stream once, with its mid as Nats-Msg-Id, in order, through an outage', async () => {
    const server = await startNats();
    const gw = await startTestGateway({ config: natsConfig(server.url) });
    const nc = await natsClient([server.url]);
    const devices = { 1: await connectDevice(gw.mqttUrl, 'js-q1'), 2: await connectDevice(gw.mqttUrl, 'js-q2') };
    const sendRange = (from: number, to: number) =>
      Promise.all(
        ([1, 2] as const).flatMap((qos) =>
          Array.from({ length: to - from }, (_, i) =>
            devices[qos].publishAsync(telemetryTopic(`js-q${qos}`), payload(reading(1, from + i)), { qos }),
          ),
        ),
      );
    await sendRange(0, 100);
    await expect.poll(async () => (await api(gw.httpUrl).forwarding()).body.backlog.readings).toBe(0);

    // The server goes away while readings keep coming: they wait in the outbox, and go once it is back.
    await server.stop();
    await expect.poll(async () => (await api(gw.httpUrl).forwarding()).body.connected).toBe(false);
    await sendRange(100, 200);
    expect((await api(gw.httpUrl).forwarding()).body.backlog.readings).toBe(200);
    await server.start();
    await expect
      .poll(async () => (await api(gw.httpUrl).forwarding()).body.backlog.readings, { timeout: 20_000 })
      .toBe(0);

    const entries = await streamEntries(nc, 'SENSORGATE');
    expect(entries).toHaveLength(400);
    for (const e of entries) {
      expect(e.msgId).toBe(e.body.mid);
      expect(e.subject).toBe(`sensorgate.gw-n.${e.body.deviceId}`);
    }
    for (const id of ['js-q1', 'js-q2']) {
      const seqs = entries.filter((e) => e.body.deviceId === id).map((e) => e.body.seq);
      // Live readings go before the backlog, so order holds within each lane: here all of them, in two runs.
      expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
      expect(new Set(seqs).size).toBe(200);
    }
  });

  it('refuses to start against a stream whose duplicate window cannot give exactly once', async () => {
    const server = await startNats();
    const nc = await natsClient([server.url]);
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: 'SENSORGATE', subjects: ['sensorgate.>'], duplicate_window: nanos(10_000) });
    await expect(startTestGateway({ config: natsConfig(server.url) })).rejects.toThrow(
      /stream SENSORGATE cannot give exactly once: its duplicate window is 10000 ms, less than upstream\.nats\.duplicateWindowMs \(60000\)/,
    );
    await expect(
      startTestGateway({ config: natsConfig(server.url, { stream: 'OTHER', createStream: false }) }),
    ).rejects.toThrow(/stream OTHER does not exist/);
  });

  it('counts the stream acknowledging a re-send as a duplicate instead of storing it twice', async () => {
    const server = await startNats();
    const nc = await natsClient([server.url]);
    const gw = await startTestGateway({ config: natsConfig(server.url) });
    const dev = await connectDevice(gw.mqttUrl, 'js-dup');
    // The stream already holds the reading under its id, as if a previous publish had landed and its ack was lost.
    const js = nc.jetstream();
    await js.publish('sensorgate.gw-n.js-dup', new TextEncoder().encode('{"mid":"js-dup:1:0"}'), {
      msgID: 'js-dup:1:0',
    });
    await dev.publishAsync(telemetryTopic('js-dup'), payload(reading(1, 0)), { qos: 1 });
    await expect.poll(async () => (await api(gw.httpUrl).forwarding()).body.backlog.readings).toBe(0);
    const metrics = (await api(gw.httpUrl).metrics()).body;
    expect(/^sensorgate_upstream_duplicates_total 1$/m.test(metrics)).toBe(true);
    expect(await streamEntries(nc, 'SENSORGATE')).toHaveLength(1);
  });

  it('counts and logs readings that go out later than the duplicate window after they may first have been sent', async () => {
    const dataDir = await tempDir();
    // No server yet: the readings wait in the outbox of a gateway that may, for all the next run knows, have sent them.
    const offline = await startTestGateway({
      dataDir,
      config: natsConfig(`nats://127.0.0.1:${await freePort()}`, { duplicateWindowMs: 1000 }),
    });
    const dev = await connectDevice(offline.mqttUrl, 'js-late');
    for (let seq = 0; seq < 3; seq++) {
      await dev.publishAsync(telemetryTopic('js-late'), payload(reading(1, seq)), { qos: 1 });
    }
    await dev.endAsync(true);
    await offline.close();

    const server = await startNats();
    // The next run starts 5 s later by its clock: the readings are older than the stream's 1 s window.
    const gw = await startTestGateway({
      dataDir,
      now: () => Date.now() + 5000,
      config: natsConfig(server.url, { duplicateWindowMs: 1000 }),
    });
    await expect.poll(async () => (await api(gw.httpUrl).forwarding()).body.backlog.readings).toBe(0);
    const metrics = (await api(gw.httpUrl).metrics()).body;
    expect(/^sensorgate_upstream_beyond_dedup_window_total 3$/m.test(metrics)).toBe(true);
  });
});
