import type { AedesPublishPacket, Client } from 'aedes';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import { startAedesUpstream, type AedesUpstream } from '../helpers/aedes-upstream.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api } from '../helpers/api.js';
import { startTestGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/temp-dir.js';

const GATEWAY_CLIENT = 'sensorgate-gw-f';
const upstreamConfig = (url: string) => ({
  gatewayId: 'gw-f',
  upstream: { enabled: true, url, backoff: { baseMs: 20, capMs: 100, stableMs: 1000 } },
});

/**
 * What the upstream broker delivered to its subscribers, counted by mid. Aedes emits 'publish' once per message it
 * accepts and routes; a duplicate it recognises (a QoS 2 DUP whose id it holds) is not routed again.
 */
function deliveries(upstream: AedesUpstream, onDelivery?: (packet: AedesPublishPacket, client: Client) => void) {
  const counts = new Map<string, number>();
  upstream.aedes.on('publish', (packet, client: Client | null) => {
    if (client?.id !== GATEWAY_CLIENT) return;
    const mid = (JSON.parse(packet.payload.toString()) as { mid: string }).mid;
    counts.set(mid, (counts.get(mid) ?? 0) + 1);
    onDelivery?.(packet, client);
  });
  return counts;
}

async function backlogReadings(httpUrl: string): Promise<number> {
  return (await api(httpUrl).forwarding()).body.backlog.readings;
}

describe('forwarding against an upstream that misbehaves (a second Aedes)', () => {
  it('QoS 2: the upstream drops the connection after routing a message, before PUBREC; each reading is still delivered exactly once', async () => {
    const upstream = await startAedesUpstream();
    let routed = 0;
    // Aedes routes a QoS 2 PUBLISH to subscribers before it sends PUBREC: cut the gateway off right then.
    const counts = deliveries(upstream, (packet, client) => {
      if (packet.qos === 2 && ++routed % 7 === 0) client.conn.destroy();
    });
    const gw = await startTestGateway({ config: upstreamConfig(upstream.url) });
    const dev = await connectDevice(gw.mqttUrl, 'q2');
    const n = 150;
    await Promise.all(
      Array.from({ length: n }, (_, seq) =>
        dev.publishAsync(telemetryTopic('q2'), payload(reading(1, seq)), { qos: 2 }),
      ),
    );

    await expect.poll(() => backlogReadings(gw.httpUrl), { timeout: 20_000 }).toBe(0);
    expect(counts.size).toBe(n);
    expect([...counts.values()].every((c) => c === 1)).toBe(true);
    const status = (await api(gw.httpUrl).forwarding()).body;
    expect(status.reconnects).toBeGreaterThanOrEqual(5);
  });

  it('QoS 1: the upstream withholds acks, then kills the socket; nothing is lost', async () => {
    let withheld = 0;
    let rounds = 0;
    const held: ((err: Error) => void)[] = [];
    const upstream = await startAedesUpstream({
      authorizePublish(client, packet, callback) {
        // For three connections: sit on every message without acking, and drop the connection a moment after the
        // first one (after a resume MQTT.js re-sends one packet at a time, so counting packets would wait forever).
        if (client?.id !== GATEWAY_CLIENT || packet.qos !== 1 || rounds >= 3) {
          callback(null);
          return;
        }
        withheld++;
        held.push(callback);
        if (held.length === 1) {
          setTimeout(() => {
            rounds++;
            client.conn.destroy();
            for (const cb of held.splice(0)) cb(new Error('withheld'));
          }, 50);
        }
      },
    });
    const counts = deliveries(upstream);
    const gw = await startTestGateway({ config: upstreamConfig(upstream.url) });
    const dev = await connectDevice(gw.mqttUrl, 'q1');
    const n = 100;
    await Promise.all(
      Array.from({ length: n }, (_, seq) =>
        dev.publishAsync(telemetryTopic('q1'), payload(reading(1, seq)), { qos: 1 }),
      ),
    );
    await expect.poll(() => backlogReadings(gw.httpUrl), { timeout: 20_000 }).toBe(0);
    expect(rounds).toBe(3);
    expect(withheld).toBeGreaterThanOrEqual(3);
    expect(counts.size).toBe(n);
  });
});

/** Packets the upstream session holds on disk, read from a closed gateway's data dir. */
async function sessionRecords(dataDir: string): Promise<number> {
  const db = new ClassicLevel<string, Uint8Array>(dataDir, { valueEncoding: 'view' });
  try {
    return (await db.sublevel('upstream-session').keys().all()).length;
  } finally {
    await db.close();
  }
}

describe('the upstream session across a restart', () => {
  it.each([2, 1] as const)(
    'QoS %i: what was in flight is delivered after a restart (QoS 2: each packet re-sent as it was, from the outbox; QoS 1: no session record)',
    async (qos) => {
      const firstSent = new Map<string, string>();
      const key = (packet: { payload: Buffer | string }) => packet.payload.toString();
      // The first upstream takes every packet and acks none: they stay in the gateway's upstream session.
      const silent = await startAedesUpstream({
        authorizePublish(client, packet) {
          if (client?.id === GATEWAY_CLIENT) firstSent.set(String(packet.messageId), key(packet));
        },
      });
      const dataDir = await tempDir();
      const config = (url: string) => ({
        ...upstreamConfig(url),
        upstream: { ...upstreamConfig(url).upstream, batchSize: 4, backfillRate: 100_000 },
      });
      // Readings committed before the first connect go as the backlog, in batches of 4 marked hist; later ones live.
      const offline = await startTestGateway({ dataDir, config: config('mqtt://127.0.0.1:9') });
      const dev = await connectDevice(offline.mqttUrl, 'rs');
      for (let seq = 0; seq < 8; seq++) await dev.publishAsync(telemetryTopic('rs'), payload(reading(1, seq)), { qos });
      await dev.endAsync(true);
      await offline.close();

      const first = await startTestGateway({ dataDir, config: config(silent.url) });
      const dev2 = await connectDevice(first.mqttUrl, 'rs');
      for (let seq = 8; seq < 11; seq++)
        await dev2.publishAsync(telemetryTopic('rs'), payload(reading(1, seq)), { qos });
      // Aedes holds back a client's later packets while it waits on authorizePublish: the backlog's two and one live.
      await expect.poll(() => firstSent.size).toBeGreaterThanOrEqual(3);
      await dev2.endAsync(true);
      await first.close();
      const held = await sessionRecords(dataDir);
      if (qos === 2) expect(held).toBeGreaterThanOrEqual(3);
      else expect(held).toBe(0);

      const resent = new Map<string, string>();
      const deliveredSeqs: number[] = [];
      const acking = await startAedesUpstream({
        authorizePublish(client, packet, callback) {
          const id = String(packet.messageId);
          if (client?.id === GATEWAY_CLIENT && firstSent.has(id) && !resent.has(id)) resent.set(id, key(packet));
          if (client?.id === GATEWAY_CLIENT) {
            const body = JSON.parse(key(packet)) as { seq: number } | { seq: number }[];
            for (const r of [body].flat()) if (!deliveredSeqs.includes(r.seq)) deliveredSeqs.push(r.seq);
          }
          callback(null);
        },
      });
      const second = await startTestGateway({ dataDir, config: config(acking.url) });
      await expect.poll(() => backlogReadings(second.httpUrl), { timeout: 20_000 }).toBe(0);
      expect(deliveredSeqs.sort((a, b) => a - b)).toEqual(Array.from({ length: 11 }, (_, i) => i));
      if (qos === 1) return;
      expect(resent).toEqual(firstSent);
      const bodies = [...resent.values()].map((p) => JSON.parse(p) as unknown);
      expect(bodies.filter((b) => Array.isArray(b))).toHaveLength(2);
      expect(bodies.filter((b) => Array.isArray(b)).flat()).toEqual(
        expect.arrayContaining([expect.objectContaining({ hist: true, seq: 0 })]),
      );
    },
  );
});
