import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { addUser } from '../../gateway/auth/passwd.js';
import { addToken } from '../../gateway/auth/tokens-file.js';
import { api, readingsOf } from '../helpers/api.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';
import { rawSession, rawSocket } from '../helpers/raw-mqtt.js';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);

/** The CONNACK return code a real MQTT.js client gets (0 when it connected). */
async function connackCode(url: string, clientId: string, opts: mqtt.IClientOptions = {}): Promise<number> {
  const client = mqtt.connect(url, { clientId, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  onTestFinished(() => client.endAsync(true));
  return new Promise<number>((resolve) => {
    client.once('connect', () => resolve(0));
    client.once('error', (err) => resolve((err as { code?: number }).code ?? -1));
  });
}

async function gatewayWithUsers(extra: Record<string, unknown> = {}) {
  const dir = await tempDir();
  const usersFile = join(dir, 'users');
  await addUser(usersFile, 'st-1', 'device', 'pw-st-1');
  await addUser(usersFile, 'st-2', 'device', 'pw-st-2');
  await addUser(usersFile, 'dash', 'reader', 'pw-dash');
  await addUser(usersFile, 'root', 'admin', 'pw-root');
  const gw = await startTestGateway({ config: { auth: { usersFile }, ...extra } });
  return { gw, usersFile };
}

const closedWithoutAck = (client: MqttClient, topic: string, body: Buffer) =>
  new Promise<string>((resolve) => {
    client.once('close', () => resolve('closed'));
    client.publish(topic, body, { qos: 1 }, (err) => resolve(err ? `error ${err.message}` : 'acked'));
  });

describe('authentication and authorisation', () => {
  it('refuses anonymous clients, wrong passwords and taken client ids once a users file is set', async () => {
    const { gw } = await gatewayWithUsers();
    expect(await connackCode(gw.mqttUrl, 'st-1')).toBe(5);
    expect(await connackCode(gw.mqttUrl, 'st-1', { username: 'st-1', password: 'wrong' })).toBe(4);
    expect(await connackCode(gw.mqttUrl, 'nobody', { username: 'nobody', password: 'x' })).toBe(4);
    // A device connects with its own name as client id, and nobody else can take that id (and its session).
    expect(await connackCode(gw.mqttUrl, 'other-id', { username: 'st-1', password: 'pw-st-1' })).toBe(2);
    expect(await connackCode(gw.mqttUrl, 'st-1', { username: 'st-2', password: 'pw-st-2' })).toBe(2);
    expect(await connackCode(gw.mqttUrl, 'st-1', { username: 'dash', password: 'pw-dash' })).toBe(2);
    expect(await connackCode(gw.mqttUrl, 'st-1', { username: 'st-1', password: 'pw-st-1' })).toBe(0);
    const metrics = await api(gw.httpUrl).metrics();
    expect(metrics.body).toMatch(/sensorgate_auth_denied_total\{action="connect"\} 6/);
  });

  it('lets a device publish only to its own topics: another device’s topic closes the connection, unacked and unstored', async () => {
    const { gw } = await gatewayWithUsers();
    const st1 = await connectDevice(gw.mqttUrl, 'st-1', { username: 'st-1', password: 'pw-st-1' });
    await st1.publishAsync(telemetryTopic('st-1'), payload(reading(1, 1)), { qos: 1 });
    expect(await closedWithoutAck(st1, telemetryTopic('st-2'), payload(reading(1, 1)))).toBe('closed');
    const devices = (await api(gw.httpUrl).devices()).body.devices.map((d) => d.id);
    expect(devices).toEqual(['st-1']);
    // A will is a publish too: one on another device's topic is refused at CONNECT.
    expect(
      await connackCode(gw.mqttUrl, 'st-1', {
        username: 'st-1',
        password: 'pw-st-1',
        will: { topic: 'sensors/st-2/status', payload: Buffer.from('offline'), qos: 1, retain: true },
      }),
    ).toBe(5);
    const metrics = (await api(gw.httpUrl).metrics()).body;
    expect(metrics).toMatch(/sensorgate_auth_denied_total\{action="publish"\} 1/);
  });

  it('grants subscriptions by role: SUBACK 0x80 for what the role does not cover, $SYS for admins only', async () => {
    const { gw } = await gatewayWithUsers();
    const port = Number(new URL(gw.mqttUrl).port);
    const granted = async (user: string, clientId: string, filters: string[]) => {
      const s = await rawSession(port, clientId, { clean: true, username: user, password: Buffer.from(`pw-${user}`) });
      expect(s.connack).toMatchObject({ returnCode: 0 });
      const suback = s.next('suback');
      s.send({ cmd: 'subscribe', messageId: 1, subscriptions: filters.map((topic) => ({ topic, qos: 1 })) });
      return ((await suback) as { granted: number[] }).granted;
    };
    expect(await granted('dash', 'dash-1', ['sensors/#', '$SYS/#', '#'])).toEqual([1, 128, 1]);
    expect(await granted('st-1', 'st-1', ['sensors/st-1/cmd', 'sensors/#', 'sensors/+/telemetry'])).toEqual([
      1, 128, 128,
    ]);
    expect(await granted('root', 'root-1', ['$SYS/#', '#'])).toEqual([1, 1]);
    const metrics = (await api(gw.httpUrl).metrics()).body;
    expect(metrics).toMatch(/sensorgate_auth_denied_total\{action="subscribe"\} 3/);
  });

  it('lets mosquitto_pub in with a device user’s credentials, and not with a wrong password', async () => {
    const { gw } = await gatewayWithUsers();
    const { port } = new URL(gw.mqttUrl);
    const body = JSON.stringify({ v: 1, boot: 1, seq: 7, ts: 1_732_600_000_000, m: { temp_c: 21.5 } });
    const pub = (password: string) =>
      run('mosquitto_pub', [
        '-h',
        '127.0.0.1',
        '-p',
        port,
        '-q',
        '1',
        '-i',
        'st-1',
        '-u',
        'st-1',
        '-P',
        password,
        '-t',
        telemetryTopic('st-1'),
        '-m',
        body,
      ]).then(
        () => 'sent',
        () => 'refused',
      );
    expect(await pub('wrong')).toBe('refused');
    expect(await pub('pw-st-1')).toBe('sent');
    expect((await readingsOf(gw.httpUrl, 'st-1')).map((r) => r.seq)).toEqual([7]);
  });

  it('re-reads the users file on reload: a new user connects, connected clients stay', async () => {
    const { gw, usersFile } = await gatewayWithUsers();
    const st1 = await connectDevice(gw.mqttUrl, 'st-1', { username: 'st-1', password: 'pw-st-1' });
    await addUser(usersFile, 'st-3', 'device', 'pw-st-3');
    expect(await connackCode(gw.mqttUrl, 'st-3', { username: 'st-3', password: 'pw-st-3' })).toBe(4);
    await gw.gateway.reload();
    expect(await connackCode(gw.mqttUrl, 'st-3', { username: 'st-3', password: 'pw-st-3' })).toBe(0);
    await st1.publishAsync(telemetryTopic('st-1'), payload(reading(1, 2)), { qos: 1 });
    expect(st1.connected).toBe(true);
  });

  it('keeps anonymous access on loopback while no users file is set (the Quick start)', async () => {
    const gw = await startTestGateway();
    expect(await connackCode(gw.mqttUrl, 'anyone')).toBe(0);
  });
});

describe('limits a client cannot break', () => {
  it('closes a connection whose packet declares more than maxPacketBytes before its body arrives', async () => {
    const gw = await startTestGateway({ config: { mqtt: { maxPacketBytes: 4096 } } });
    const port = Number(new URL(gw.mqttUrl).port);
    const dev = await rawSession(port, 'big', { clean: true });
    expect(dev.connack).toMatchObject({ returnCode: 0 });
    // PUBLISH QoS 0 declaring 256 MiB: only the fixed header is sent; the broker must not wait for the body.
    dev.socket.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x7f]));
    await dev.closed;
    // A packet at the limit still goes through.
    const ok = await connectDevice(gw.mqttUrl, 'fits');
    await ok.publishAsync(telemetryTopic('fits'), Buffer.alloc(3000, 0x61), { qos: 1 });
    const metrics = (await api(gw.httpUrl).metrics()).body;
    expect(metrics).toMatch(/sensorgate_limit_exceeded_total\{limit="packet_size"\} 1/);
  });

  it('closes connections over maxConnections, and one that sends no CONNECT within connectTimeoutMs', async () => {
    const gw = await startTestGateway({ config: { mqtt: { maxConnections: 2, connectTimeoutMs: 300 } } });
    const port = Number(new URL(gw.mqttUrl).port);
    await connectDevice(gw.mqttUrl, 'one');
    await connectDevice(gw.mqttUrl, 'two');
    const third = await rawSocket(port);
    await third.closed;
    await expect
      .poll(async () => (await api(gw.httpUrl).metrics()).body)
      .toMatch(/sensorgate_limit_exceeded_total\{limit="connections"\} 1/);
    const gw2 = await startTestGateway({ config: { mqtt: { connectTimeoutMs: 300 } } });
    const silent = await rawSocket(Number(new URL(gw2.mqttUrl).port));
    await silent.closed;
  });

  it('bounds the dead letters: the first maxPayloadBytes of each payload, the newest maxCount, across a restart', async () => {
    const dataDir = await tempDir();
    const config = { deadLetters: { maxPayloadBytes: 100, maxCount: 3 } };
    const junk = (i: number) => Buffer.alloc(500, 0xf0 + i);
    const send = async (url: string, from: number, to: number) => {
      const dev = await connectDevice(url, 'ws-junk');
      for (let i = from; i < to; i++) await dev.publishAsync(telemetryTopic('ws-junk'), junk(i), { qos: 1 });
      await dev.endAsync();
    };
    const first = await startTestGateway({ dataDir, config });
    await send(first.mqttUrl, 0, 5);
    const letters = async (base: string) => (await api(base).deadLetters()).body.deadLetters;
    await expect.poll(async () => (await letters(first.httpUrl)).length).toBe(3);
    const kept = await letters(first.httpUrl);
    expect(kept.map((l) => [Buffer.from(l.payload ?? '', 'base64'), l.payloadBytes])).toEqual(
      [4, 3, 2].map((i) => [junk(i).subarray(0, 100), 500]),
    );
    expect((await api(first.httpUrl).metrics()).body).toMatch(/sensorgate_deadletters_dropped_total 2/);
    await first.close();
    const second = await startTestGateway({ dataDir, config });
    await send(second.mqttUrl, 5, 6);
    await expect.poll(async () => (await letters(second.httpUrl)).map((l) => l.payload?.length)).toHaveLength(3);
    expect(Buffer.from((await letters(second.httpUrl))[0]?.payload ?? '', 'base64')[0]).toBe(0xf5);
  });

  it('disconnects a subscriber that stopped reading before its backlog grows the gateway, and publishers go on', async () => {
    const gw = await startTestGateway({ config: { mqtt: { maxOutgoingBufferBytes: 256 * 1024 } } });
    const port = Number(new URL(gw.mqttUrl).port);
    const stuck = await rawSession(port, 'stuck', { clean: true });
    const suback = stuck.next('suback');
    stuck.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 1 }] });
    await suback;
    stuck.socket.pause();
    const rssBefore = process.memoryUsage().rss;
    const camera = await connectDevice(gw.mqttUrl, 'camera');
    const over = async () => /limit="slow_client"\} 1/.test((await api(gw.httpUrl).metrics()).body);
    // The kernel's buffers on both sides of loopback take some megabytes first; 100 MB is far beyond them.
    let sent = 0;
    while (sent < 1000 && !(await over())) {
      await camera.publishAsync('lab/camera/frame', Buffer.alloc(100_000, 1), { qos: 1 });
      sent++;
    }
    expect(await over()).toBe(true);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024);
    const dev = await connectDevice(gw.mqttUrl, 'ws-after');
    await dev.publishAsync(telemetryTopic('ws-after'), payload(reading(1, 1)), { qos: 1 });
    stuck.socket.resume();
    await stuck.closed;
  });

  it('removes a persistent session offline longer than sessionExpirySeconds, also one found at start-up', async () => {
    const dataDir = await tempDir();
    const first = await startTestGateway({ dataDir });
    const old = await connectDevice(first.mqttUrl, 'old-dash', { clean: false });
    await old.subscribeAsync('sensors/#', { qos: 1 });
    await old.endAsync();
    await first.close();

    const gw = await startTestGateway({ dataDir, config: { mqtt: { sessionExpirySeconds: 1 } } });
    const live = await connectDevice(gw.mqttUrl, 'live-dash', { clean: false });
    await live.subscribeAsync('sensors/#', { qos: 1 });
    const gone = await connectDevice(gw.mqttUrl, 'gone-dash', { clean: false });
    await gone.subscribeAsync('sensors/#', { qos: 1 });
    await gone.endAsync();
    await expect
      .poll(async () => (await api(gw.httpUrl).metrics()).body, { timeout: 10_000 })
      .toMatch(/sensorgate_sessions_expired_total 2/);

    const seen = new Promise<void>((resolve) => live.once('message', () => resolve()));
    const dev = await connectDevice(gw.mqttUrl, 'ws-e');
    await dev.publishAsync(telemetryTopic('ws-e'), payload(reading(1, 1)), { qos: 1 });
    await seen;
    for (const id of ['old-dash', 'gone-dash']) {
      const back = await rawSession(Number(new URL(gw.mqttUrl).port), id, { clean: false });
      expect(back.connack).toMatchObject({ returnCode: 0, sessionPresent: false });
    }
  });

  it('queues at most maxQueuedMessages for an offline persistent session, and counts the rest', async () => {
    const gw = await startTestGateway({ config: { mqtt: { maxQueuedMessages: 10 } } });
    const dashboard = await connectDevice(gw.mqttUrl, 'dashboard', { clean: false });
    await dashboard.subscribeAsync('sensors/+/telemetry', { qos: 1 });
    await dashboard.endAsync();
    const dev = await connectDevice(gw.mqttUrl, 'ws-q');
    for (let seq = 0; seq < 30; seq++)
      await dev.publishAsync(telemetryTopic('ws-q'), payload(reading(1, seq)), { qos: 1 });
    expect((await api(gw.httpUrl).metrics()).body).toMatch(
      /sensorgate_limit_exceeded_total\{limit="session_queue"\} 20/,
    );

    const received: number[] = [];
    const back = mqtt.connect(gw.mqttUrl, { clientId: 'dashboard', clean: false, reconnectPeriod: 0 });
    onTestFinished(() => back.endAsync(true));
    back.on('message', () => received.push(received.length));
    await new Promise((resolve) => back.once('connect', resolve));
    await expect.poll(() => received.length).toBe(10);
    // Connected again, it is not limited: the next readings all reach it.
    for (let seq = 30; seq < 45; seq++)
      await dev.publishAsync(telemetryTopic('ws-q'), payload(reading(1, seq)), { qos: 1 });
    await expect.poll(() => received.length).toBe(25);
    expect((await readingsOf(gw.httpUrl, 'ws-q', '?limit=100')).length).toBe(45);
  });

  it('refuses keepalive 0 or above the maximum, an empty client id without a clean session, and packet id 0', async () => {
    const gw = await startTestGateway({ config: { mqtt: { maxKeepaliveSeconds: 120 } } });
    const port = Number(new URL(gw.mqttUrl).port);
    expect((await rawSession(port, 'k0', { keepalive: 0 })).connack).not.toMatchObject({ returnCode: 0 });
    expect((await rawSession(port, 'k1', { keepalive: 121 })).connack).not.toMatchObject({ returnCode: 0 });
    expect((await rawSession(port, 'k2', { keepalive: 120 })).connack).toMatchObject({ returnCode: 0 });
    // [MQTT-3.1.3-8]: CONNACK 0x02, then close.
    // Written by hand: mqtt-packet will not generate this CONNECT. Protocol MQTT 4, flags 0 (no clean session),
    // keepalive 60, an empty client id.
    const empty = await rawSocket(port);
    const refused = empty.next('connack');
    empty.socket.write(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0, 0, 60, 0, 0]));
    expect(await refused).toMatchObject({ returnCode: 2 });
    await empty.closed;
    const zero = await rawSession(port, 'pid0', { clean: true });
    const body = payload(reading(1, 1));
    zero.send({
      cmd: 'publish',
      topic: telemetryTopic('pid0'),
      payload: body,
      qos: 1,
      messageId: 0,
      dup: false,
      retain: false,
    });
    await zero.closed;
    expect((await api(gw.httpUrl).devices()).body.devices.map((d) => d.id)).not.toContain('pid0');
  });
});

describe('the HTTP API', () => {
  it('needs a bearer token once a tokens file is set; raw dead-letter payloads need the admin scope', async () => {
    const dir = await tempDir();
    const tokensFile = join(dir, 'tokens');
    const reader = await addToken(tokensFile, 'grafana', 'read');
    const admin = await addToken(tokensFile, 'ops', 'admin');
    const gw = await startTestGateway({ config: { auth: { tokensFile } } });
    const dev = await connectDevice(gw.mqttUrl, 'ws-t');
    await dev.publishAsync(telemetryTopic('ws-t'), Buffer.from('not a reading'), { qos: 1 });

    expect((await api(gw.httpUrl).health()).status).toBe(200);
    for (const token of [undefined, 'not-a-token', `${reader}x`]) {
      const denied = await api(gw.httpUrl, token).stats();
      expect(denied).toMatchObject({ status: 401, body: { error: 'GW_HTTP_UNAUTHORIZED' } });
      expect((await api(gw.httpUrl, token).metrics()).status).toBe(401);
    }
    const asReader = await api(gw.httpUrl, reader).deadLetters();
    expect(asReader.status).toBe(200);
    expect(asReader.body.deadLetters.map((d) => [d.code, d.payload])).toEqual([['GW_PAYLOAD_UNDECODABLE', null]]);
    const asAdmin = await api(gw.httpUrl, admin).deadLetters();
    expect(Buffer.from(asAdmin.body.deadLetters[0]?.payload ?? '', 'base64').toString()).toBe('not a reading');
  });

  it('answers bad paths with 4xx, never 500, and pages the device list', async () => {
    const gw = await startTestGateway();
    const { port } = new URL(gw.httpUrl);
    const status = (path: string) =>
      new Promise<number>((resolve, reject) =>
        request({ host: '127.0.0.1', port, path }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .on('error', reject)
          .end(),
      );
    expect(await status('//')).toBe(404);
    expect(await status('//api/v1/stats')).toBe(404);
    expect(await status('/api/v1/devices/%E0%A4%A/readings')).toBe(400);
    expect(await status('/api/v1/devices?limit=0')).toBe(400);

    for (const id of ['ws-a', 'ws-b', 'ws-c']) {
      const dev = await connectDevice(gw.mqttUrl, id);
      await dev.publishAsync(telemetryTopic(id), payload(reading(1, 1)), { qos: 1 });
    }
    const first = (await api(gw.httpUrl).devices('?limit=2')).body;
    expect(first.devices.map((d) => d.id)).toEqual(['ws-a', 'ws-b']);
    expect(first.next).toBe('ws-b');
    const second = (await api(gw.httpUrl).devices(`?limit=2&after=${first.next}`)).body;
    expect(second).toMatchObject({ devices: [{ id: 'ws-c' }], next: null });
  });
});
