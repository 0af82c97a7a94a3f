/** What real devices send: counter resets, stations without a clock, foreign sensors that repeat a value, retained clears. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { StoredReading } from '../../gateway/domain/model.js';
import type { DeadLetterView } from '../../gateway/http/views.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api, deviceView as device, readingsOf } from '../helpers/api.js';
import { startTestGateway } from '../helpers/gateway.js';

async function deadLetters(httpUrl: string): Promise<DeadLetterView[]> {
  return (await api(httpUrl).deadLetters()).body.deadLetters;
}

const keys = (rs: StoredReading[]) => rs.map((r) => `${r.boot}:${r.seq}`).sort();
const NOW = Date.now();

describe('readings real devices send', () => {
  it('is not silenced by one reading with the highest boot and seq', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'ws-p');
    const send = (boot: number, seq: number) =>
      dev.publishAsync(telemetryTopic('ws-p'), payload(reading(boot, seq), 'json'), { qos: 1 });
    await send(4, 0);
    await send(4, 1);
    await dev.publishAsync(
      telemetryTopic('ws-p'),
      JSON.stringify({ ...reading(4, 2), boot: 4294967295, seq: 9007199254740991 }),
      { qos: 1 },
    );
    await send(4, 2);
    await send(4, 3);
    expect(keys(await readingsOf(gw.httpUrl, 'ws-p'))).toEqual(['4:0', '4:1', '4:2', '4:3']);
    const d = await device(gw.httpUrl, 'ws-p');
    expect(d).toMatchObject({ boot: 4, highSeq: 3, bootResets: 0 });
    expect(d?.counters.qos1).toMatchObject({ received: 5, stored: 4, rejected: 1, missing: 0 });
    expect((await deadLetters(gw.httpUrl)).map((l) => l.code)).toEqual(['GW_SEQ_JUMP']);
  });

  it('starts over at once when a reflashed device (boot back to 0) shows a newer time', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'ws-r');
    const send = (boot: number, seq: number, ts: number) =>
      dev.publishAsync(telemetryTopic('ws-r'), payload({ ...reading(boot, seq), ts }), { qos: 1 });
    for (let seq = 0; seq < 3; seq++) await send(7, seq, NOW - 60_000 + seq);
    await send(0, 0, NOW - 1000);
    await send(0, 1, NOW - 999);
    // A late retry of the old boot after the reset is still recognised as a copy.
    await send(7, 2, NOW - 60_000 + 2);
    expect(keys(await readingsOf(gw.httpUrl, 'ws-r'))).toEqual(['0:0', '0:1', '7:0', '7:1', '7:2']);
    const d = await device(gw.httpUrl, 'ws-r');
    expect(d).toMatchObject({ boot: 0, highSeq: 1, bootResets: 1 });
    expect(d?.counters.qos1).toMatchObject({ received: 6, stored: 5, duplicate: 1 });
    const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^sensorgate_boot_resets_total 1$/m);
  });

  it('starts over a device without a clock after three readings of its new boot, keeping the first two', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'ws-c');
    const send = (boot: number, seq: number) =>
      dev.publishAsync(telemetryTopic('ws-c'), payload({ ...reading(boot, seq), ts: 0 }, 'json'), { qos: 1 });
    for (let seq = 0; seq < 5; seq++) await send(9, seq);
    for (let seq = 0; seq < 4; seq++) await send(2, seq);
    expect(keys(await readingsOf(gw.httpUrl, 'ws-c'))).toEqual(['2:2', '2:3', '9:0', '9:1', '9:2', '9:3', '9:4']);
    const letters = await deadLetters(gw.httpUrl);
    expect(letters.map((l) => l.code)).toEqual(['GW_STALE', 'GW_STALE']);
    expect(letters.map((l) => JSON.parse(Buffer.from(l.payload ?? '', 'base64').toString()).seq)).toEqual([1, 0]);
    expect(await device(gw.httpUrl, 'ws-c')).toMatchObject({ boot: 2, highSeq: 3, bootResets: 1 });
  });

  it('stores a clockless reading at the gateway time, marked, and finds it by time', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'ws-t');
    const before = Date.now();
    await dev.publishAsync(telemetryTopic('ws-t'), payload({ ...reading(1, 0), ts: 0 }), { qos: 1 });
    await dev.publishAsync(telemetryTopic('ws-t'), payload({ ...reading(1, 1), ts: Date.now() + 10 * 86_400_000 }), {
      qos: 1,
    });
    const deviceTs = Date.now();
    await dev.publishAsync(telemetryTopic('ws-t'), payload({ ...reading(1, 2), ts: deviceTs }), { qos: 1 });
    const { body } = await api(gw.httpUrl).readings('ws-t', `?from=${before}`);
    const bySeq = new Map(body.readings.map((r) => [r.seq, r]));
    expect(bySeq.size).toBe(3);
    for (const seq of [0, 1]) {
      expect(bySeq.get(seq)).toMatchObject({ tsSource: 'gateway' });
      expect(bySeq.get(seq)?.ts).toBe(bySeq.get(seq)?.rx);
    }
    expect(bySeq.get(2)).toMatchObject({ ts: deviceTs });
    expect(bySeq.get(2)?.tsSource).toBeUndefined();
    expect((await device(gw.httpUrl, 'ws-t'))?.counters.qos1).toMatchObject({ stored: 3, gatewayTime: 2 });
  });

  it('keeps the device time with deviceClock: device', async () => {
    const gw = await startTestGateway({ config: { ingest: { deviceClock: 'device' } } });
    const dev = await connectDevice(gw.mqttUrl, 'ws-d');
    await dev.publishAsync(telemetryTopic('ws-d'), payload({ ...reading(1, 0), ts: 0 }), { qos: 1 });
    expect(await readingsOf(gw.httpUrl, 'ws-d')).toMatchObject([{ ts: 0 }]);
  });

  it('stores a foreign sensor that reports the same value twice, unless the payload carries its own time', async () => {
    const gw = await startTestGateway({
      config: {
        ingest: { foreign: [{ topic: 'shellies/{deviceId}/temperature' }, { topic: 'tele/{deviceId}/SENSOR' }] },
      },
    });
    const dev = await connectDevice(gw.mqttUrl, 'foreign');
    await dev.publishAsync('shellies/sh-1/temperature', '21.5', { qos: 1 });
    await dev.publishAsync('shellies/sh-1/temperature', '21.5', { qos: 1 });
    const tasmota = JSON.stringify({ Time: '2026-12-02T10:00:00', SI7021: { Temperature: 21.5 } });
    await dev.publishAsync('tele/t-1/SENSOR', tasmota, { qos: 1 });
    await dev.publishAsync('tele/t-1/SENSOR', tasmota, { qos: 1 });
    expect(await readingsOf(gw.httpUrl, 'sh-1')).toHaveLength(2);
    expect(await readingsOf(gw.httpUrl, 't-1')).toHaveLength(1);
  });

  it('treats a zero-length retained publish on a telemetry or status topic as clearing it, not as a reading', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'ws-x');
    await dev.publishAsync(telemetryTopic('ws-x'), payload(reading(1, 0)), { qos: 1, retain: true });
    await dev.publishAsync(telemetryTopic('ws-x'), '', { qos: 1, retain: true });
    await dev.publishAsync('sensors/ws-x/status', '', { qos: 1, retain: true });
    expect(await deadLetters(gw.httpUrl)).toEqual([]);
    expect((await device(gw.httpUrl, 'ws-x'))?.counters.qos1).toMatchObject({ received: 1, stored: 1, rejected: 0 });
    const late = await connectDevice(gw.mqttUrl, 'late-subscriber');
    const retained: string[] = [];
    late.on('message', (topic) => retained.push(topic));
    await late.subscribeAsync('sensors/#', { qos: 1 });
    await late.publishAsync('sensors/marker/x', 'marker', { qos: 1 });
    await expect.poll(() => retained).toContain('sensors/marker/x');
    expect(retained).toEqual(['sensors/marker/x']);
  });

  it('stores a reading that Python cbor2 encoded and mosquitto_pub sent at QoS 1', async () => {
    const gw = await startTestGateway();
    const port = new URL(gw.mqttUrl).port;
    const script = [
      'import cbor2, sys',
      'sys.stdout.buffer.write(cbor2.dumps({"v": 1, "boot": 3, "seq": 42, "ts": 1732600000000, "m": {"temp_c": 21.5, "rh_pct": 48}}))',
    ].join('\n');
    const run = promisify(execFile);
    const file = `${gw.dataDir}/reading.cbor`;
    const { stdout } = await run('/usr/bin/python3', ['-c', script], { encoding: 'buffer' });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, stdout);
    await run('mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      port,
      '-q',
      '1',
      '-i',
      'py-device',
      '-t',
      'sensors/py-1/telemetry',
      '-f',
      file,
    ]);
    expect(await readingsOf(gw.httpUrl, 'py-1')).toMatchObject([
      { boot: 3, seq: 42, ts: 1732600000000, qos: 1, m: { temp_c: 21.5, rh_pct: 48 } },
    ]);
  });
});
