import { describe, expect, it } from 'vitest';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api } from '../helpers/api.js';
import { startTestGateway } from '../helpers/gateway.js';
import { freePort, startMosquitto, subscribeUpstream, type Received } from '../helpers/mosquitto.js';

type Forwarding = {
  connected: boolean;
  inFlight: number;
  backlog: { readings: number; bytes: number; oldestAgeMs: number | null };
  forwarded: number[];
  acked: number[];
  dropped: number[];
};

const upstreamConfig = (url: string, extra: Record<string, unknown> = {}) => ({
  gatewayId: 'gw-test',
  upstream: { enabled: true, url, backoff: { baseMs: 50, capMs: 200, stableMs: 1000 }, ...extra },
});

async function forwarding(httpUrl: string): Promise<Forwarding> {
  return (await api(httpUrl).forwarding()).body;
}

function seqsOf(received: Received[], deviceId: string): number[] {
  return received.filter((r) => r.body.deviceId === deviceId).map((r) => r.body.seq as number);
}

describe('forwarding to a real upstream broker (Mosquitto)', () => {
  it('forwards every reading with the contract topic, payload and mid, in order per device', async () => {
    const broker = await startMosquitto();
    const cloud = await subscribeUpstream(broker.url);
    const gw = await startTestGateway({ config: upstreamConfig(broker.url) });
    await expect.poll(async () => (await forwarding(gw.httpUrl)).connected).toBe(true);

    const a = await connectDevice(gw.mqttUrl, 'fa');
    const b = await connectDevice(gw.mqttUrl, 'fb');
    const n = 200;
    await Promise.all([
      ...Array.from({ length: n }, (_, seq) =>
        a.publishAsync(telemetryTopic('fa'), payload(reading(1, seq)), { qos: 1 }),
      ),
      ...Array.from({ length: n }, (_, seq) =>
        b.publishAsync(telemetryTopic('fb'), payload(reading(4, seq), 'json'), { qos: 2 }),
      ),
    ]);
    await a.publishAsync(telemetryTopic('fa'), payload(reading(1, n)), { qos: 0 });
    await expect.poll(() => cloud.received.length, { timeout: 15_000 }).toBe(2 * n + 1);

    // QoS 0 goes from memory and may overtake QoS 1 readings of the same device waiting in the outbox.
    const fa = cloud.received.filter((r) => r.body.deviceId === 'fa');
    expect(fa.filter((r) => r.qos === 1).map((r) => r.body.seq)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(fa.filter((r) => r.qos === 0).map((r) => r.body.seq)).toEqual([n]);
    expect(seqsOf(cloud.received, 'fb')).toEqual(Array.from({ length: n }, (_, i) => i));
    const first = cloud.received.find((r) => r.body.deviceId === 'fb' && r.body.seq === 7);
    const sent = reading(4, 7);
    expect(first?.topic).toBe('sensorgate/gw-test/fb/telemetry');
    expect(first?.qos).toBe(2);
    expect(first?.body).toEqual({
      deviceId: 'fb',
      boot: 4,
      seq: 7,
      ts: sent.ts,
      m: sent.m,
      rx: expect.any(Number),
      qos: 2,
      gw: 'gw-test',
      mid: 'fb:4:7',
    });

    await expect.poll(async () => (await forwarding(gw.httpUrl)).backlog.readings).toBe(0);
    const status = await forwarding(gw.httpUrl);
    expect(status.acked).toEqual([1, n, n]);
    expect(status.backlog.bytes).toBe(0);
  });

  it('keeps ingesting through an outage, then sends live readings first and drains the backlog behind them', async () => {
    const broker = await startMosquitto();
    const cloud = await subscribeUpstream(broker.url);
    const gw = await startTestGateway({ config: upstreamConfig(broker.url, { backfillRate: 200 }) });
    await expect.poll(async () => (await forwarding(gw.httpUrl)).connected).toBe(true);

    await broker.stop();
    await expect.poll(async () => (await forwarding(gw.httpUrl)).connected).toBe(false);
    const dev = await connectDevice(gw.mqttUrl, 'out');
    const backlog = 400;
    await Promise.all(
      Array.from({ length: backlog }, (_, seq) =>
        dev.publishAsync(telemetryTopic('out'), payload(reading(1, seq)), { qos: 1 }),
      ),
    );
    const during = await forwarding(gw.httpUrl);
    expect(during.backlog.readings).toBe(backlog);
    expect(during.backlog.bytes).toBeGreaterThan(0);
    const metrics = (await api(gw.httpUrl).metrics()).body;
    expect(metrics).toMatch(new RegExp(`sensorgate_backlog_readings ${backlog}`));

    await broker.start();
    await expect.poll(async () => (await forwarding(gw.httpUrl)).connected, { timeout: 10_000 }).toBe(true);
    const live = await connectDevice(gw.mqttUrl, 'live');
    for (let seq = 0; seq < 10; seq++)
      await live.publishAsync(telemetryTopic('live'), payload(reading(1, seq)), { qos: 1 });

    await expect.poll(() => cloud.received.length, { timeout: 20_000 }).toBe(backlog + 10);
    expect(seqsOf(cloud.received, 'out')).toEqual(Array.from({ length: backlog }, (_, i) => i));
    expect(seqsOf(cloud.received, 'live')).toEqual(Array.from({ length: 10 }, (_, i) => i));
    const order = cloud.received.map((r) => r.body.deviceId);
    expect(order.lastIndexOf('live')).toBeLessThan(order.lastIndexOf('out'));
    expect(cloud.received.filter((r) => r.body.deviceId === 'out').every((r) => r.body.hist === true)).toBe(true);
    expect(cloud.received.filter((r) => r.body.deviceId === 'live').every((r) => r.body.hist === undefined)).toBe(true);
    await expect.poll(async () => (await forwarding(gw.httpUrl)).backlog.readings).toBe(0);
    expect((await api(gw.httpUrl).metrics()).body).toMatch(/sensorgate_backlog_readings 0/);
  });

  it('stops acking QoS 1/2 when the backlog budget is reached, drops nothing, and resumes when it drains', async () => {
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    const gw = await startTestGateway({ config: upstreamConfig(url, { backlogBudgetBytes: 2048 }) });
    const dev = await connectDevice(gw.mqttUrl, 'full', { reconnectPeriod: 50 });

    let acked = 0;
    let refused: Promise<unknown> | undefined;
    const closed = new Promise<string>((resolve) => dev.once('close', () => resolve('refused')));
    for (let seq = 0; seq < 200 && !refused; seq++) {
      const published = dev.publishAsync(telemetryTopic('full'), payload(reading(1, seq)), { qos: 1 });
      const outcome = await Promise.race([published.then(() => 'acked'), closed]);
      if (outcome === 'acked') acked++;
      else refused = published;
    }
    expect(refused).toBeDefined();
    expect(acked).toBeGreaterThan(5);
    const health = await api(gw.httpUrl).health();
    expect(health.status).toBe(503);
    expect(health.body.reason).toMatch(/backlog budget/);
    expect((await api(gw.httpUrl).metrics()).body).toMatch(/sensorgate_backlog_full 1/);
    const stored = async () => (await api(gw.httpUrl).readings('full')).body.readings.length;
    expect(await stored()).toBe(acked);

    await startMosquitto({ port });
    await refused;
    expect(await stored()).toBe(acked + 1);
    await expect.poll(async () => (await forwarding(gw.httpUrl)).acked[1], { timeout: 10_000 }).toBe(acked + 1);
    expect((await forwarding(gw.httpUrl)).backlog.readings).toBe(0);
    expect((await api(gw.httpUrl).health()).status).toBe(200);
  });

  it('with MQTT 5 carries mid as a user property and batches the backlog per device', async () => {
    const broker = await startMosquitto();
    const cloud = await subscribeUpstream(broker.url);
    const props: Record<string, unknown>[] = [];
    cloud.client.on('message', (_t, _p, packet) => props.push(packet.properties?.userProperties ?? {}));
    const port = broker.port;
    await broker.stop();
    const gw = await startTestGateway({
      config: upstreamConfig(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, batchSize: 5 }),
    });
    const dev = await connectDevice(gw.mqttUrl, 'v5');
    await Promise.all(
      Array.from({ length: 12 }, (_, seq) =>
        dev.publishAsync(telemetryTopic('v5'), payload(reading(1, seq)), { qos: 1 }),
      ),
    );
    await broker.start();
    await expect.poll(() => cloud.received.length, { timeout: 10_000 }).toBe(12);
    expect(seqsOf(cloud.received, 'v5')).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(cloud.received.every((r) => r.body.hist === true)).toBe(true);
    // 12 backlog readings of one device in batches of 5: three messages.
    expect(props).toEqual([
      { mid: 'v5:1:0,v5:1:1,v5:1:2,v5:1:3,v5:1:4' },
      { mid: 'v5:1:5,v5:1:6,v5:1:7,v5:1:8,v5:1:9' },
      { mid: 'v5:1:10,v5:1:11' },
    ]);
  });
});
