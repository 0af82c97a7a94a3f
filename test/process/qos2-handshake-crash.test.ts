import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { describe, expect, it, onTestFinished } from 'vitest';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api } from '../helpers/api.js';
import { startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A raw MQTT 3.1.1 session, so that the test decides when (and whether) PUBREL is sent. */
async function rawSession(port: number, clientId: string) {
  const socket: Socket = connect(port, '127.0.0.1');
  onTestFinished(() => void socket.destroy());
  await once(socket, 'connect');
  const parser = mqttPacket.parser();
  const waiting: { cmd: string; resolve(p: Packet): void }[] = [];
  parser.on('packet', (p: Packet) => {
    const i = waiting.findIndex((w) => w.cmd === p.cmd);
    if (i >= 0) waiting.splice(i, 1)[0]?.resolve(p);
  });
  socket.on('data', (d) => parser.parse(d));
  socket.on('error', () => undefined);
  const next = (cmd: string) => new Promise<Packet>((resolve) => waiting.push({ cmd, resolve }));
  const send = (p: Packet) => socket.write(mqttPacket.generate(p));
  const connack = next('connack');
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId, keepalive: 0 });
  expect(await connack).toMatchObject({ returnCode: 0 });
  return { socket, next, send };
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

    const dev = await rawSession(first.ready.mqtt.port, 'ws-q2');
    const pubrec = dev.next('pubrec');
    dev.send({ cmd: 'publish', topic, payload: body, qos: 2, messageId: 7, retain: false, dup: false });
    expect(await pubrec).toMatchObject({ messageId: 7 });
    await expect.poll(() => seen).toEqual([body.toString()]);
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    const second = await startGatewayProcess(dir);
    await watch(second.ready.mqtt.port);
    const again = await rawSession(second.ready.mqtt.port, 'ws-q2');
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
