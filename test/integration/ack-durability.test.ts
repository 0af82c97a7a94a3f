import type { Packet } from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { StoredReading } from '../../gateway/domain/model.js';
import { controlledDb, type ControlledDb } from '../helpers/controlled-db.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api } from '../helpers/api.js';
import { startTestGateway } from '../helpers/gateway.js';

async function gatewayWithControlledDb() {
  let ctl: ControlledDb | undefined;
  const gw = await startTestGateway({
    createDb: (dir) => {
      ctl = controlledDb(dir);
      return ctl.db;
    },
  });
  return { gw, ctl: ctl as ControlledDb };
}

async function stored(httpUrl: string, id: string): Promise<StoredReading[]> {
  return (await api(httpUrl).readings(id)).body.readings;
}

describe('the ack waits for the durable write', () => {
  it.each([
    [1, 'puback'],
    [2, 'pubrec'],
  ] as const)(
    'QoS %i: no %s while the batch is being written, and the reading is on disk when it comes',
    async (qos, ackCmd) => {
      const { gw, ctl } = await gatewayWithControlledDb();
      const dev = await connectDevice(gw.mqttUrl, 'slow');
      const probe = await connectDevice(gw.mqttUrl, 'probe');
      const acks: string[] = [];
      dev.on('packetreceive', (p: Packet) => acks.push(p.cmd));

      const release = ctl.hold();
      const reachedDb = ctl.nextBatch();
      const published = dev.publishAsync(telemetryTopic('slow'), payload(reading(1, 0)), { qos });
      await reachedDb;
      // A full round trip through the broker on another connection: an ack sent before the write would be here by now.
      await probe.publishAsync('probe/ping', 'x', { qos: 1 });
      expect(acks).not.toContain(ackCmd);
      expect(await stored(gw.httpUrl, 'slow')).toEqual([]);

      release();
      await published;
      expect(acks).toContain(ackCmd);
      expect((await stored(gw.httpUrl, 'slow')).map((r) => r.seq)).toEqual([0]);
    },
  );

  it('a failed write is never acked: the device is disconnected, retries, and the reading is stored exactly once', async () => {
    const { gw, ctl } = await gatewayWithControlledDb();
    const dev = await connectDevice(gw.mqttUrl, 'flaky', { reconnectPeriod: 20 });
    const acks: number[] = [];
    let closes = 0;
    dev.on('packetreceive', (p: Packet) => {
      if (p.cmd === 'puback') acks.push(p.messageId as number);
    });
    dev.on('close', () => closes++);

    ctl.failNext(Object.assign(new Error('simulated EIO'), { code: 'EIO' }));
    await dev.publishAsync(telemetryTopic('flaky'), payload(reading(1, 0)), { qos: 1 });

    expect(closes).toBeGreaterThanOrEqual(1);
    expect(acks).toHaveLength(1);
    expect((await stored(gw.httpUrl, 'flaky')).map((r) => `${r.boot}:${r.seq}`)).toEqual(['1:0']);
    const devices = (await api(gw.httpUrl).devices()).body.devices;
    // The failed attempt left no trace in the durable counters; the retry counts once.
    expect(devices.find((d) => d.id === 'flaky')?.counters.qos1).toMatchObject({
      received: 1,
      stored: 1,
      duplicate: 0,
    });
    expect((await api(gw.httpUrl).health()).status).toBe(200);
  });

  it('reports the failing store on /healthz until a write succeeds again', async () => {
    const { gw, ctl } = await gatewayWithControlledDb();
    const dev = await connectDevice(gw.mqttUrl, 'h');
    ctl.failNext(new Error('disk gone'));
    const closed = new Promise<void>((resolve) => dev.once('close', () => resolve()));
    dev.publish(telemetryTopic('h'), payload(reading(1, 0)), { qos: 1 });
    await closed;
    const health = await api(gw.httpUrl).health();
    expect(health.status).toBe(503);
    expect(health.body.reason).toMatch(/disk gone/);
    const again = await connectDevice(gw.mqttUrl, 'h2');
    await again.publishAsync(telemetryTopic('h2'), payload(reading(1, 0)), { qos: 1 });
    expect((await api(gw.httpUrl).health()).status).toBe(200);
  });
});
