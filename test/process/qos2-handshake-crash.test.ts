import { describe, expect, it } from 'vitest';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api } from '../helpers/api.js';
import { startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { rawSession } from '../helpers/raw-mqtt.js';

async function rawDevice(port: number, clientId: string) {
  const session = await rawSession(port, clientId);
  expect(session.connack).toMatchObject({ returnCode: 0 });
  return session;
}

describe('QoS 2 telemetry across a crash between PUBREC and PUBREL', () => {
  it('acks the re-sent PUBLISH and PUBREL, stores the reading once and routes it once', async () => {
    const dir = await tempDir();
    const first = await startGatewayProcess(dir);
    const topic = telemetryTopic('ws-q2');
    const body = payload(reading(4, 1), 'json');
    const seen: string[] = [];
    const watch = async (port: number) => {
      const sub = await connectDevice(`mqtt://127.0.0.1:${port}`, 'dashboard');
      sub.on('message', (_t, b) => seen.push(b.toString()));
      await sub.subscribeAsync('sensors/+/telemetry', { qos: 2 });
    };
    await watch(first.ready.mqtt.port);

    const dev = await rawDevice(first.ready.mqtt.port, 'ws-q2');
    const pubrec = dev.next('pubrec');
    dev.send({ cmd: 'publish', topic, payload: body, qos: 2, messageId: 7, retain: false, dup: false });
    expect(await pubrec).toMatchObject({ messageId: 7 });
    await expect.poll(() => seen).toEqual([body.toString()]);
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    const second = await startGatewayProcess(dir);
    await watch(second.ready.mqtt.port);
    const again = await rawDevice(second.ready.mqtt.port, 'ws-q2');
    // The device never saw a PUBCOMP: it re-sends the PUBLISH (DUP), then releases it.
    const pubrecAgain = again.next('pubrec');
    again.send({ cmd: 'publish', topic, payload: body, qos: 2, messageId: 7, retain: false, dup: true });
    expect(await pubrecAgain).toMatchObject({ messageId: 7 });
    const pubcomp = again.next('pubcomp');
    again.send({ cmd: 'pubrel', messageId: 7 });
    expect(await pubcomp).toMatchObject({ messageId: 7 });

    // A new reading after it: once the subscriber has it, a routed repeat would have arrived before it.
    const newer = payload(reading(4, 2), 'json');
    const done = again.next('pubcomp');
    again.send({ cmd: 'publish', topic, payload: newer, qos: 2, messageId: 8, retain: false, dup: false });
    expect(await again.next('pubrec')).toMatchObject({ messageId: 8 });
    again.send({ cmd: 'pubrel', messageId: 8 });
    await done;
    await expect.poll(() => seen.length).toBe(2);
    expect(seen).toEqual([body.toString(), newer.toString()]);

    const http = `http://127.0.0.1:${second.ready.http.port}`;
    const { body: page } = await api(http).readings('ws-q2');
    expect(page.readings.map((r) => r.seq)).toEqual([1, 2]);
    const { body: devices } = await api(http).devices();
    expect(devices.devices.find((d) => d.id === 'ws-q2')?.counters.qos2).toMatchObject({
      received: 3,
      stored: 2,
      duplicate: 1,
    });
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
