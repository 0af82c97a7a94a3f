import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import type { Packet } from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { ReadingsView } from '../../gateway/http/views.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api, deviceView as device, readingsOf } from '../helpers/api.js';
import { startTestGateway } from '../helpers/gateway.js';

describe('ingest over real MQTT into LevelDB', () => {
  it('stores readings at QoS 0, 1 and 2 in CBOR and JSON and returns them field for field', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'ws-1');
    const sent: { qos: 0 | 1 | 2; r: ReturnType<typeof reading> }[] = [];
    let seq = 0;
    for (const qos of [0, 1, 2] as const) {
      for (const encoding of ['cbor', 'json'] as const) {
        const r = reading(3, seq++, { m: { temp_c: -12.25, rh_pct: 99.5, pres_hpa: 1013.2, custom_ppm: 412 } });
        sent.push({ qos, r });
        await dev.publishAsync(telemetryTopic('ws-1'), payload(r, encoding), { qos });
      }
    }
    await expect.poll(async () => (await readingsOf(gw.httpUrl, 'ws-1')).length).toBe(6);
    const stored = await readingsOf(gw.httpUrl, 'ws-1');
    for (const { qos, r } of sent) {
      const s = stored.find((x) => x.seq === r.seq);
      expect(s).toEqual({ deviceId: 'ws-1', boot: r.boot, seq: r.seq, ts: r.ts, rx: expect.any(Number), qos, m: r.m });
    }
    const stats = await api(gw.httpUrl).stats();
    expect(stats.body.qos0).toMatchObject({ received: 2, stored: 2 });
    expect(stats.body.qos1).toMatchObject({ received: 2, stored: 2 });
    expect(stats.body.qos2).toMatchObject({ received: 2, stored: 2 });
  });

  it('acks pipelined QoS 1 publishes from one device in the order they were sent', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'pipe');
    const sentIds: number[] = [];
    const ackedIds: number[] = [];
    dev.on('packetsend', (p: Packet) => {
      if (p.cmd === 'publish') sentIds.push(p.messageId as number);
    });
    dev.on('packetreceive', (p: Packet) => {
      if (p.cmd === 'puback') ackedIds.push(p.messageId as number);
    });
    const pubs = Array.from({ length: 300 }, (_, seq) =>
      dev.publishAsync(telemetryTopic('pipe'), payload(reading(1, seq)), { qos: 1 }),
    );
    await Promise.all(pubs);
    expect(ackedIds).toHaveLength(300);
    expect(ackedIds).toEqual(sentIds);
    expect((await device(gw.httpUrl, 'pipe'))?.counters.qos1).toMatchObject({
      received: 300,
      stored: 300,
      duplicate: 0,
      missing: 0,
    });
  });

  it('counts duplicates, out-of-order, stale, reboots and late retries exactly and stores one copy each', async () => {
    const gw = await startTestGateway({ config: { ingest: { dedupWindow: 8 } } });
    const dev = await connectDevice(gw.mqttUrl, 'dd');
    const send = (boot: number, seq: number, opts: { dup?: boolean } = {}, client = dev) =>
      client.publishAsync(telemetryTopic('dd'), payload(reading(boot, seq)), { qos: 1, ...opts });
    await send(1, 0);
    await send(1, 1);
    await send(1, 2);
    await send(1, 1, { dup: true }); // a retransmission, flagged as such
    await send(1, 2); // the same reading again without the DUP flag
    const other = await connectDevice(gw.mqttUrl, 'dd-second-connection');
    await send(1, 0, {}, other); // the same reading on a new connection
    await send(1, 5); // gap: 3 and 4 missing
    await send(1, 3); // late, fills a gap
    await send(1, 20); // gap of 14 more
    await send(1, 4); // below the window of 8: stale
    await send(2, 0); // reboot
    await send(1, 19); // a late retry from before the reboot
    await send(1, 20); // a duplicate from before the reboot
    await send(0, 0); // older than the previous boot: stale

    const d = await device(gw.httpUrl, 'dd');
    expect(d).toMatchObject({ boot: 2, highSeq: 0 });
    expect(d?.counters.qos1).toEqual({
      received: 14,
      stored: 8,
      duplicate: 4,
      stale: 2,
      missing: 14,
      late: 2,
      rejected: 0,
      gatewayTime: 0,
    });
    const keys = (await readingsOf(gw.httpUrl, 'dd')).map((r) => `${r.boot}:${r.seq}`).sort();
    expect(keys).toEqual(['1:0', '1:1', '1:19', '1:2', '1:20', '1:3', '1:5', '2:0']);
  });

  it('keeps dedup state and counters across a restart on the same data dir', async () => {
    const first = await startTestGateway();
    const dev = await connectDevice(first.mqttUrl, 'rs');
    for (let seq = 0; seq < 5; seq++)
      await dev.publishAsync(telemetryTopic('rs'), payload(reading(1, seq)), { qos: 2 });
    await dev.endAsync();
    await first.close();

    const second = await startTestGateway({ dataDir: first.dataDir });
    const again = await connectDevice(second.mqttUrl, 'rs');
    await again.publishAsync(telemetryTopic('rs'), payload(reading(1, 4)), { qos: 2 });
    await again.publishAsync(telemetryTopic('rs'), payload(reading(1, 5)), { qos: 2 });
    expect((await device(second.httpUrl, 'rs'))?.counters.qos2).toMatchObject({ received: 7, stored: 6, duplicate: 1 });
    expect(await readingsOf(second.httpUrl, 'rs')).toHaveLength(6);
  });

  it('pages through readings with an opaque cursor and filters by device time', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'pg');
    await Promise.all(
      Array.from({ length: 25 }, (_, seq) =>
        dev.publishAsync(telemetryTopic('pg'), payload(reading(1, seq)), { qos: 1 }),
      ),
    );
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `?limit=10${cursor ? `&cursor=${cursor}` : ''}`;
      const page: ReadingsView = (await api(gw.httpUrl).readings('pg', q)).body;
      seen.push(...page.readings.map((r) => r.seq));
      cursor = page.next;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i));
    const t0 = reading(1, 0).ts;
    const ranged = await readingsOf(gw.httpUrl, 'pg', `?from=${t0 + 5000}&to=${t0 + 7000}`);
    expect(ranged.map((r) => r.seq)).toEqual([5, 6, 7]);
    expect((await api(gw.httpUrl).readings('pg', '?limit=0')).status).toBe(400);
    expect((await api(gw.httpUrl).readings('pg', '?from=x')).status).toBe(400);
  });

  it('stores foreign readings with a gateway sequence and drops equal content within the window', async () => {
    const gw = await startTestGateway({ config: { ingest: { foreign: [{ topic: 'tele/{deviceId}/SENSOR' }] } } });
    const dev = await connectDevice(gw.mqttUrl, 'tasmota');
    const body = (t: number) =>
      JSON.stringify({ Time: '2024-01-01T00:00:00', AM2301: { Temperature: t, Humidity: 40 } });
    await dev.publishAsync('tele/tasmota_1/SENSOR', body(21), { qos: 1 });
    await dev.publishAsync('tele/tasmota_1/SENSOR', body(21), { qos: 1 });
    await dev.publishAsync('tele/tasmota_1/SENSOR', body(22), { qos: 1 });
    const stored = await readingsOf(gw.httpUrl, 'tasmota_1');
    expect(stored.map((r) => [r.seq, r.m['AM2301.Temperature'], r.foreign])).toEqual([
      [0, 21, true],
      [1, 22, true],
    ]);
    expect((await device(gw.httpUrl, 'tasmota_1'))?.counters.qos1).toMatchObject({
      received: 3,
      stored: 2,
      duplicate: 1,
    });
  });

  it('keeps every kind of malformed payload in the dead letters with its reason, acks it, and goes on serving', async () => {
    const gw = await startTestGateway({ config: { ingest: { maxPayloadBytes: 256 } } });
    const bad = await connectDevice(gw.mqttUrl, 'bad');
    const cases: [string, Buffer, string][] = [
      ['sensors/b1/telemetry', Buffer.from('{"v":1,'), 'GW_PAYLOAD_UNDECODABLE'],
      ['sensors/b1/telemetry', Buffer.from([0xbf, 0x61]), 'GW_PAYLOAD_UNDECODABLE'],
      ['sensors/b1/telemetry', payload({ ...reading(1, 0), m: { temp_c: 99 } }), 'GW_PAYLOAD_INVALID'],
      ['sensors/b1/telemetry', Buffer.from(JSON.stringify({ ...reading(1, 0), extra: true })), 'GW_PAYLOAD_INVALID'],
      ['sensors/b1/telemetry', payload({ ...reading(1, 0), id: 'someone-else' }), 'GW_DEVICE_ID_MISMATCH'],
      ['sensors/b1/telemetry', Buffer.alloc(300, 0x41), 'GW_PAYLOAD_TOO_LARGE'],
      ['sensors/not valid!/telemetry', payload(reading(1, 0)), 'GW_TOPIC_INVALID'],
    ];
    for (const [topic, body] of cases) await bad.publishAsync(topic, body, { qos: 1 });

    // A raw socket that speaks garbage must not disturb anyone else.
    const junk = netConnect(Number(new URL(gw.mqttUrl).port), '127.0.0.1');
    await once(junk, 'connect');
    junk.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
    await once(junk, 'close');

    const good = await connectDevice(gw.mqttUrl, 'good');
    await good.publishAsync(telemetryTopic('good'), payload(reading(1, 0)), { qos: 1 });
    expect(await readingsOf(gw.httpUrl, 'good')).toHaveLength(1);

    const { body } = await api(gw.httpUrl).deadLetters('?limit=50');
    const letters = [...body.deadLetters].reverse();
    expect(letters.map((l) => [l.topic, l.code])).toEqual(cases.map(([t, , c]) => [t, c]));
    letters.forEach((l, i) => {
      expect(Buffer.from(l.payload ?? '', 'base64')).toEqual(cases[i]![1]);
      expect(l.reason.length).toBeGreaterThan(5);
    });
    expect(letters.at(-1)?.deviceId).toBeNull();
    expect((await device(gw.httpUrl, 'b1'))?.counters.qos1).toMatchObject({ received: 6, rejected: 6, stored: 0 });
    const stats = await api(gw.httpUrl).stats();
    expect(stats.body.qos1?.rejected).toBe(7);
  });

  it('serves health and Prometheus metrics', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'mx');
    await dev.publishAsync(telemetryTopic('mx'), payload(reading(1, 0)), { qos: 1 });
    await dev.publishAsync(telemetryTopic('mx'), payload(reading(1, 0)), { qos: 1 });
    expect(await api(gw.httpUrl).health()).toEqual({ status: 200, body: { status: 'ok' } });
    const metrics = (await api(gw.httpUrl).metrics()).body;
    expect(metrics).toMatch(/sensorgate_readings_total\{outcome="stored",qos="1"\} 1/);
    expect(metrics).toMatch(/sensorgate_readings_total\{outcome="duplicate",qos="1"\} 1/);
    expect(metrics).toMatch(/sensorgate_connected_clients 1/);
    expect(metrics).toMatch(/sensorgate_commit_write_seconds_count\{sync="true"\} [1-9]/);
    expect(metrics).toMatch(/sensorgate_ack_latency_seconds_count\{qos="1"\} 2/);
    expect((await api(gw.httpUrl).get('/nope')).status).toBe(404);
  });
});
