import { readFile } from 'node:fs/promises';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { api } from '../helpers/api.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';

const metric = (text: string, name: string) =>
  Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);

describe('what the page reads', () => {
  it('series: min, mean and max per bucket over a range, from the stored readings', async () => {
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'ws-1');
    const t0 = Date.now() - 3_600_000;
    // 60 readings, one a minute: buckets of 10 minutes hold 10 each.
    for (let seq = 0; seq < 60; seq++) {
      const r = reading(1, seq, { ts: t0 + seq * 60_000, m: { temp_c: seq, rh_pct: 50 } });
      await dev.publishAsync(telemetryTopic('ws-1'), payload(r), { qos: 1 });
    }
    const { status, body } = await api(gw.httpUrl).series('ws-1', `?from=${t0}&to=${t0 + 3_600_000}&step=600000`);
    expect(status).toBe(200);
    expect(body.buckets.map((b) => [b.t - t0, b.n, b.m.temp_c])).toEqual(
      Array.from({ length: 6 }, (_, i) => [i * 600_000, 10, [i * 10, i * 10 + 4.5, i * 10 + 9]]),
    );
    expect(body.buckets.every((b) => JSON.stringify(b.m.rh_pct) === '[50,50,50]')).toBe(true);

    const tooMany = await api(gw.httpUrl).series('ws-1', `?from=0&to=${t0}&step=1`);
    expect(tooMany.status).toBe(400);
    expect((tooMany.body as unknown as { message: string }).message).toMatch(/at most 5000 buckets/);
    expect((await api(gw.httpUrl).series('bad%20id')).status).toBe(400);
  });

  it('devices carry the newest reading, silence and battery; the metrics count silent and low-battery stations', async () => {
    const gw = await startTestGateway({ config: { ui: { silentAfterMs: 1000, lowBatteryVolts: 3.5 } } });
    const quiet = await connectDevice(gw.mqttUrl, 'quiet');
    await quiet.publishAsync(telemetryTopic('quiet'), payload(reading(1, 0, { ts: Date.now(), m: { batt_v: 3.2 } })), {
      qos: 1,
    });
    await expect
      .poll(async () => (await api(gw.httpUrl).devices()).body.devices[0]?.silent, { timeout: 10_000 })
      .toBe(true);
    const busy = await connectDevice(gw.mqttUrl, 'busy');
    await busy.publishAsync(telemetryTopic('busy'), payload(reading(1, 0, { ts: Date.now(), m: { batt_v: 4.1 } })), {
      qos: 1,
    });
    const devices = (await api(gw.httpUrl).devices()).body.devices;
    expect(devices.map((d) => [d.id, d.silent, d.lowBattery, d.latest?.m.batt_v])).toEqual([
      ['busy', false, false, 4.1],
      ['quiet', true, true, 3.2],
    ]);
    const text = (await api(gw.httpUrl).metrics()).body;
    expect(metric(text, 'sensorgate_devices_silent')).toBe(1);
    expect(metric(text, 'sensorgate_devices_low_battery')).toBe(1);
    expect(metric(text, 'sensorgate_device_last_seen_seconds\\{device="quiet"\\}')).toBeGreaterThan(1);
    expect(metric(text, 'sensorgate_device_battery_volts\\{device="busy"\\}')).toBe(4.1);
  });

  it('serves the page gzipped with an ETag and no token; the live stream is bounded', async () => {
    const gw = await startTestGateway();
    const page = await fetch(`${gw.httpUrl}/`, { headers: { 'accept-encoding': 'gzip' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('/ui/uPlot.iife.min.js');
    const etag = page.headers.get('etag') as string;
    expect((await fetch(`${gw.httpUrl}/`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const raw = await fetch(`${gw.httpUrl}/ui/uPlot.iife.min.js`, { headers: { 'accept-encoding': 'gzip' } });
    expect(raw.headers.get('content-encoding')).toBe('gzip');
    expect((await fetch(`${gw.httpUrl}/ui/nothing.js`)).status).toBe(404);

    // API answers too, above 1 KB: the page asks for every device every 5 s, over a phone's Wi-Fi.
    for (const id of ['a', 'b', 'c']) {
      const dev = await connectDevice(gw.mqttUrl, `ws-${id}`);
      await dev.publishAsync(telemetryTopic(`ws-${id}`), payload(reading(1, 0)), { qos: 1 });
    }
    const rawGet = async (encoding: string) => {
      const res = await new Promise<IncomingMessage>((resolve, reject) =>
        httpGet(`${gw.httpUrl}/api/v1/devices`, { headers: { 'accept-encoding': encoding } }, resolve).on(
          'error',
          reject,
        ),
      );
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      return { encoding: res.headers['content-encoding'], body: Buffer.concat(chunks) };
    };
    const zipped = await rawGet('gzip, deflate');
    const plain = await rawGet('identity');
    expect(zipped.encoding).toBe('gzip');
    expect(plain.encoding).toBeUndefined();
    expect(zipped.body.length).toBeLessThan(plain.body.length / 2);
    expect(JSON.parse(gunzipSync(zipped.body).toString())).toEqual(JSON.parse(plain.body.toString()));
    // Node's fetch inflates it: what arrives is uPlot itself.
    expect(await raw.text()).toMatch(/uPlot/);

    const streams: AbortController[] = [];
    try {
      for (let i = 0; i < 32; i++) {
        const c = new AbortController();
        streams.push(c);
        expect((await fetch(`${gw.httpUrl}/api/v1/events`, { signal: c.signal })).status).toBe(200);
      }
      const refused = await fetch(`${gw.httpUrl}/api/v1/events`);
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { error: string }).error).toBe('GW_HTTP_BUSY');
    } finally {
      for (const c of streams) c.abort();
    }
  });

  it('the alert rules in docs/ui.md parse, and every metric they use is one the gateway exports', async () => {
    const doc = await readFile('docs/ui.md', 'utf8');
    const block = /```yaml\n(groups:[\s\S]*?)```/.exec(doc)?.[1];
    expect(block).toBeDefined();
    const rules = (parse(block as string) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups.flatMap(
      (g) => g.rules,
    );
    expect(rules.length).toBeGreaterThanOrEqual(3);
    const gw = await startTestGateway();
    const dev = await connectDevice(gw.mqttUrl, 'ws-1');
    await dev.publishAsync(telemetryTopic('ws-1'), payload(reading(1, 0, { ts: Date.now(), m: { batt_v: 3.9 } })), {
      qos: 1,
    });
    const exported = new Set(
      [...(await api(gw.httpUrl).metrics()).body.matchAll(/^(sensorgate_\w+?)(?:\{| )/gm)].map((m) => m[1]),
    );
    const used = rules.flatMap((r) => [...r.expr.matchAll(/sensorgate_\w+/g)].map((m) => m[0]));
    expect(used.filter((name) => !exported.has(name))).toEqual([]);
  });
});
