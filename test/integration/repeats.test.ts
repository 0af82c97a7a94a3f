import { describe, expect, it } from 'vitest';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';

describe('repeats of stored readings', () => {
  it('acks a re-sent reading but routes it to local subscribers only once, at QoS 0, 1 and 2', async () => {
    const gw = await startTestGateway();
    const sub = await connectDevice(gw.mqttUrl, 'dashboard');
    const seen: number[] = [];
    sub.on('message', (_topic, body) => seen.push(JSON.parse(body.toString()).seq as number));
    await sub.subscribeAsync('sensors/+/telemetry', { qos: 2 });

    const dev = await connectDevice(gw.mqttUrl, 'ws-r');
    let seq = 0;
    for (const qos of [0, 1, 2] as const) {
      const r = reading(1, ++seq);
      // The second copy is what a device sends when it missed the ack: acked again, stored and routed once.
      await dev.publishAsync(telemetryTopic('ws-r'), payload(r, 'json'), { qos });
      await dev.publishAsync(telemetryTopic('ws-r'), payload(r, 'json'), { qos });
    }
    // A reading that is new after the repeats: once it arrives, anything routed before it has arrived too.
    await dev.publishAsync(telemetryTopic('ws-r'), payload(reading(1, ++seq), 'json'), { qos: 1 });
    await expect.poll(() => seen.at(-1)).toBe(seq);
    expect(seen).toEqual([1, 2, 3, 4]);
  });

  it('still routes every copy of a rejected message, which dedup cannot recognise', async () => {
    const gw = await startTestGateway();
    const sub = await connectDevice(gw.mqttUrl, 'dashboard');
    const seen: string[] = [];
    sub.on('message', (_topic, body) => seen.push(body.toString()));
    await sub.subscribeAsync('sensors/+/telemetry', { qos: 1 });
    const dev = await connectDevice(gw.mqttUrl, 'ws-bad');
    await dev.publishAsync(telemetryTopic('ws-bad'), '{"not":"a reading"}', { qos: 1 });
    await dev.publishAsync(telemetryTopic('ws-bad'), '{"not":"a reading"}', { qos: 1 });
    await expect.poll(() => seen.length).toBe(2);
  });
});
