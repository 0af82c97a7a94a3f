import mqtt, { type MqttClient } from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Qos } from '../../gateway/domain/model.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/temp-dir.js';

const DEVICES = ['ws-a', 'ws-b', 'ws-c', 'ws-d'];

/** Every reading a subscriber got, as `device:seq`, in arrival order (duplicates kept, so that they show). */
function collect(client: MqttClient): string[] {
  const got: string[] = [];
  client.on('message', (topic, body) =>
    got.push(`${topic.split('/')[1]}:${(JSON.parse(body.toString()) as { seq: number }).seq}`),
  );
  return got;
}

/**
 * Each device publishes `count` readings without waiting for any ack (MQTT.js keeps them all in flight), at the QoS
 * levels given in turn; resolves when every one was acked (QoS 1/2) or written (QoS 0), with what was sent.
 */
async function pipeline(url: string, first: number, count: number, levels: readonly Qos[]): Promise<string[]> {
  const sent: string[] = [];
  await Promise.all(
    DEVICES.map(async (id) => {
      const dev = await connectDevice(url, id);
      const acks: Promise<unknown>[] = [];
      for (let seq = first; seq < first + count; seq++) {
        acks.push(
          dev.publishAsync(telemetryTopic(id), payload(reading(1, seq), 'json'), {
            qos: levels[seq % levels.length] as Qos,
          }),
        );
        sent.push(`${id}:${seq}`);
      }
      await Promise.all(acks);
      await dev.endAsync();
    }),
  );
  return sent.sort();
}

const sorted = (xs: readonly string[]) => [...xs].sort();

describe('local subscribers', () => {
  it('get every acked reading once, with persistent and clean sessions connected and publishers pipelining QoS 0, 1 and 2', async () => {
    const gw = await startTestGateway();
    const persistent = await connectDevice(gw.mqttUrl, 'logger', { clean: false });
    const clean = await connectDevice(gw.mqttUrl, 'dashboard');
    const atPersistent = collect(persistent);
    const atClean = collect(clean);
    await persistent.subscribeAsync('sensors/+/telemetry', { qos: 2 });
    await clean.subscribeAsync('sensors/#', { qos: 1 });

    const sent = await pipeline(gw.mqttUrl, 0, 150, [0, 1, 2]);
    expect(sent).toHaveLength(DEVICES.length * 150);
    await expect.poll(() => atPersistent.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(sent.length);
    await expect.poll(() => atClean.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(sent.length);
    expect(sorted(atPersistent)).toEqual(sent);
    expect(sorted(atClean)).toEqual(sent);
  });

  it("keep a persistent subscriber's queued readings across a gateway restart, and get the new ones too", async () => {
    const dataDir = await tempDir();
    const first = await startTestGateway({ dataDir });
    const away = await connectDevice(first.mqttUrl, 'logger', { clean: false });
    await away.subscribeAsync('sensors/+/telemetry', { qos: 1 });
    await away.endAsync();
    const before = await pipeline(first.mqttUrl, 0, 40, [1, 2]);
    await first.close();

    const second = await startTestGateway({ dataDir });
    const after = await pipeline(second.mqttUrl, 40, 40, [1, 2]);
    // Collecting from before the CONNACK: the queue follows it at once.
    const back = mqtt.connect(second.mqttUrl, { clientId: 'logger', clean: false, reconnectPeriod: 0 });
    onTestFinished(() => back.endAsync(true));
    const got = collect(back);
    const all = sorted([...before, ...after]);
    await expect.poll(() => got.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(all.length);
    expect(sorted(got)).toEqual(all);
  });
});
