import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Connects; `got` collects `topic=payload` of every message, from before the CONNACK on (a session's queue). */
async function connect(
  port: number,
  clientId: string,
  opts: mqtt.IClientOptions = {},
  got?: string[],
): Promise<mqtt.MqttClient> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0, ...opts });
  if (got) c.on('message', (topic, body) => got.push(`${topic}=${body.toString()}`));
  onTestFinished(() => c.endAsync(true));
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

const STATUS = 'sensors/ws-w/status';

describe('wills after a crash', () => {
  it('publishes the will of a device that was connected when the gateway was SIGKILLed, once', async () => {
    const dir = await tempDir();
    const first = await startGatewayProcess(dir);
    const port1 = first.ready.mqtt.port;
    // A persistent watcher, offline during the crash: its session queue shows how often the will was published.
    const watcher = await connect(port1, 'watcher', { clean: false });
    await watcher.subscribeAsync('sensors/+/status', { qos: 1 });
    await watcher.endAsync();
    const device = await connect(port1, 'ws-w', {
      will: { topic: STATUS, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    // QoS 2: Aedes queues a message for offline sessions before PUBREC, but at QoS 1 only after the PUBACK.
    await device.publishAsync(STATUS, 'online', { qos: 2, retain: true });
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    const second = await startGatewayProcess(dir);
    const fresh = await connect(second.ready.mqtt.port, 'newcomer');
    const retained: string[] = [];
    fresh.on('message', (topic, body, packet) => packet.retain && retained.push(`${topic}=${body.toString()}`));
    await fresh.subscribeAsync('sensors/+/status', { qos: 1 });
    await expect.poll(() => retained).toEqual([`${STATUS}=offline`]);

    const statuses: string[] = [];
    const back = await connect(second.ready.mqtt.port, 'watcher', { clean: false }, statuses);
    await expect.poll(() => statuses.length).toBeGreaterThanOrEqual(2);
    // A marker: once it and the queue arrived, a second copy of the will would have arrived too.
    await fresh.publishAsync('sensors/marker/status', 'marker', { qos: 1 });
    await expect.poll(() => statuses).toContain('sensors/marker/status=marker');
    expect(statuses.sort()).toEqual(['sensors/marker/status=marker', `${STATUS}=offline`, `${STATUS}=online`]);
    await back.endAsync();
    second.child.kill('SIGKILL');
    await second.exited;

    // The will is gone once published: a further crash and restart does not publish it again.
    const third = await startGatewayProcess(dir);
    const later: string[] = [];
    await connect(third.ready.mqtt.port, 'watcher', { clean: false }, later);
    const pub = await connect(third.ready.mqtt.port, 'marker2');
    await pub.publishAsync('sensors/marker/status', 'marker 2', { qos: 1 });
    await expect.poll(() => later.at(-1)).toBe('sensors/marker/status=marker 2');
    expect(later).toEqual(['sensors/marker/status=marker 2']);
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
  });
});
