import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

function client(port: number, clientId: string, clean: boolean) {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, clean, reconnectPeriod: 0 });
  onTestFinished(() => c.endAsync(true));
  return c;
}

async function connected(c: mqtt.MqttClient): Promise<mqtt.IConnackPacket> {
  return new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
}

describe('durable broker state', () => {
  it('keeps persistent sessions, their queued QoS 1 messages and retained messages across a SIGKILL', async () => {
    const dir = await tempDir();
    const first = await startGatewayProcess(dir);
    const sub = client(first.ready.mqtt.port, 'dashboard', false);
    await connected(sub);
    await sub.subscribeAsync('alerts/#', { qos: 1 });
    await sub.endAsync();

    const pub = client(first.ready.mqtt.port, 'alarm', true);
    await connected(pub);
    // QoS 2: Aedes routes (and queues for offline sessions) before PUBREC. At QoS 1 it routes after the PUBACK.
    await pub.publishAsync('alerts/frost', 'queued while offline', { qos: 2 });
    await pub.publishAsync('alerts/config', 'retained', { qos: 1, retain: true });
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    const second = await startGatewayProcess(dir);
    const back = client(second.ready.mqtt.port, 'dashboard', false);
    const messages: string[] = [];
    back.on('message', (topic, payload) => messages.push(`${topic}=${payload.toString()}`));
    const connack = await connected(back);
    expect(connack.sessionPresent).toBe(true);
    await expect.poll(() => messages).toContain('alerts/frost=queued while offline');

    const fresh = client(second.ready.mqtt.port, 'newcomer', true);
    const retained: string[] = [];
    fresh.on('message', (topic, payload, packet) => packet.retain && retained.push(`${topic}=${payload.toString()}`));
    await connected(fresh);
    await fresh.subscribeAsync('alerts/#', { qos: 1 });
    await expect.poll(() => retained).toEqual(['alerts/config=retained']);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
