import { describe, expect, it } from 'vitest';
import { api } from '../helpers/api.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';
import { laneOrderViolations, natsClient, startNatsCluster, streamEntries } from '../helpers/nats.js';

const PER_DEVICE = 300;

describe('forwarding into a three-node JetStream cluster', () => {
  it('keeps exactly once and per-lane order when the stream leader is killed and restarted mid-forward', async () => {
    const nodes = await startNatsCluster();
    const servers = nodes.map((n) => n.url);
    const gw = await startTestGateway({
      config: {
        gatewayId: 'gw-c',
        upstream: {
          enabled: true,
          kind: 'nats',
          url: servers.join(','),
          backoff: { baseMs: 20, capMs: 200, stableMs: 1000 },
          nats: { replicas: 3, duplicateWindowMs: 60_000, ackTimeoutMs: 2000 },
        },
      },
    });
    await expect.poll(async () => (await api(gw.httpUrl).forwarding()).body.connected, { timeout: 20_000 }).toBe(true);
    const nc = await natsClient(servers);
    const jsm = await nc.jetstreamManager();
    const devices = { 1: await connectDevice(gw.mqttUrl, 'cl-q1'), 2: await connectDevice(gw.mqttUrl, 'cl-q2') };
    const acked: string[] = [];
    const sending = Promise.all(
      ([1, 2] as const).map(async (qos) => {
        for (let seq = 0; seq < PER_DEVICE; seq++) {
          await devices[qos].publishAsync(telemetryTopic(`cl-q${qos}`), payload(reading(1, seq)), { qos });
          acked.push(`cl-q${qos}:1:${seq}`);
        }
      }),
    );

    // Kill the stream's leader once forwarding is under way, and bring it back while it still goes on.
    await expect.poll(async () => (await jsm.streams.info('SENSORGATE')).state.messages).toBeGreaterThan(100);
    const leader = (await jsm.streams.info('SENSORGATE')).cluster?.leader;
    const victim = nodes.find((_, i) => `n${i}` === leader) ?? (nodes[0] as (typeof nodes)[number]);
    await victim.kill();
    await expect.poll(() => acked.length, { timeout: 20_000 }).toBeGreaterThan(PER_DEVICE);
    await victim.start();
    await sending;

    await expect
      .poll(async () => (await api(gw.httpUrl).forwarding()).body.backlog.readings, { timeout: 30_000 })
      .toBe(0);
    const entries = await streamEntries(nc, 'SENSORGATE');
    const counts = new Map<string, number>();
    for (const e of entries) counts.set(e.body.mid, (counts.get(e.body.mid) ?? 0) + 1);
    expect(acked).toHaveLength(2 * PER_DEVICE);
    expect(acked.filter((mid) => counts.get(mid) !== 1)).toEqual([]);
    expect(entries).toHaveLength(2 * PER_DEVICE);
    expect(laneOrderViolations(entries)).toEqual([]);
  }, 90_000);
});
