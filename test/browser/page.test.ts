import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { addToken } from '../../gateway/auth/tokens-file.js';
import { api } from '../helpers/api.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';
import { launchBrowser, phonePage } from '../helpers/browser.js';
import { tempDir } from '../helpers/temp-dir.js';

const STATIONS = ['ws-north', 'ws-south', 'ws-roof'];

/** One reading at QoS 1 through Debian's mosquitto_pub (its own client id, so the station's connection stays). */
async function mosquittoPub(port: number, deviceId: string, body: Record<string, unknown>): Promise<void> {
  await promisify(execFile)('mosquitto_pub', [
    ...['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-i', `${deviceId}-pub`],
    ...['-t', `sensors/${deviceId}/telemetry`, '-m', JSON.stringify(body)],
  ]);
}

/** The part of a canvas element the check below uses (the tests compile without the DOM's types). */
interface CanvasLike {
  width: number;
  height: number;
  getContext(
    kind: '2d',
  ): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } | null;
}

describe('the page at / in headless Chromium', () => {
  it('lists every station, shows a new reading without a reload, draws a chart, flags a silent station, fits 390 px', async () => {
    const gw = await startTestGateway({ config: { ui: { silentAfterMs: 3000 } } });
    const devices = await Promise.all(STATIONS.map((id) => connectDevice(gw.mqttUrl, id)));
    const start = Date.now() - 10 * 60_000;
    await Promise.all(
      devices.map(async (dev, d) => {
        for (let seq = 0; seq < 20; seq++) {
          const m = { temp_c: 10 + d + (seq % 5), rh_pct: 60, pres_hpa: 1012, wind_ms: 3.5, batt_v: 4.0 };
          await dev.publishAsync(
            telemetryTopic(STATIONS[d] as string),
            payload(reading(1, seq, { ts: start + seq * 30_000, m })),
            {
              qos: d as 0 | 1 | 2,
            },
          );
        }
      }),
    );
    // QoS 0 has no ack: wait until the gateway has them all.
    await expect.poll(async () => (await api(gw.httpUrl).stats()).body.qos0.stored).toBe(20);

    const browser = await launchBrowser();
    const { page, errors } = await phonePage(browser);
    await page.goto(`${gw.httpUrl}/`);
    await page
      .locator('[data-station]')
      .nth(STATIONS.length - 1)
      .waitFor();
    expect(
      await page.locator('[data-station]').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-station'))),
    ).toEqual([...STATIONS].sort());
    await expect.poll(() => page.locator('#health').getAttribute('data-status')).toBe('ok');
    await expect.poll(() => page.locator('#live').getAttribute('data-live')).toBe('true');
    // The delivery table per QoS: QoS 0, 1 and 2 each received 20.
    expect(await page.locator('#semantics tbody tr').allInnerTexts()).toEqual([
      expect.stringMatching(/^QoS 0: at most once\s+20\s+20/),
      expect.stringMatching(/^QoS 1: at least once\s+20\s+20/),
      expect.stringMatching(/^QoS 2: exactly once\s+20\s+20/),
    ]);

    // A reading published now shows up without a reload: the live stream, not the 5 s refresh. mosquitto_pub sends
    // it, with the JSON written here, as a device of someone else's would.
    const temp = page.locator('[data-station="ws-north"] [data-measurement="temp_c"]');
    await mosquittoPub(gw.addresses.mqtt.port, 'ws-north', {
      v: 1,
      boot: 1,
      seq: 20,
      ts: Date.now(),
      m: { temp_c: 33.3 },
    });
    await temp.filter({ hasText: '33.3 °C' }).waitFor({ timeout: 2000 });

    // Fits a phone: nothing wider than the screen.
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);

    // ws-roof stops sending (all of them did); past ui.silentAfterMs it is flagged, after a refresh of the page data.
    await page.locator('[data-station="ws-roof"][data-silent="true"]').waitFor({ timeout: 15_000 });
    expect(await page.locator('[data-station="ws-roof"]').getAttribute('class')).toContain('silent');

    // The station page: one chart per measurement, drawn (pixels on the canvas), and live.
    await page.locator('[data-station="ws-south"] header a').click();
    const canvas = page.locator('.chart canvas').first();
    await canvas.waitFor();
    expect(await page.locator('.chart').count()).toBe(5);
    const inked = await canvas.evaluate((c: CanvasLike) => {
      const ctx = c.getContext('2d');
      const { data } = ctx?.getImageData(0, 0, c.width, c.height) ?? { data: [] };
      let n = 0;
      for (let i = 3; i < data.length; i += 4) if ((data[i] ?? 0) > 0) n++;
      return n;
    });
    expect(inked).toBeGreaterThan(100);
    await mosquittoPub(gw.addresses.mqtt.port, 'ws-south', {
      v: 1,
      boot: 1,
      seq: 20,
      ts: Date.now(),
      m: { temp_c: -4.5 },
    });
    await page
      .locator('[data-station="ws-south"] [data-measurement="temp_c"]', { hasText: '-4.5 °C' })
      .waitFor({ timeout: 2000 });

    expect(errors).toEqual([]);
  });

  it('asks for the API token when one is needed, and works with it', async () => {
    const dir = await tempDir();
    const tokensFile = join(dir, 'tokens');
    const token = await addToken(tokensFile, 'phone', 'read');
    const gw = await startTestGateway({ config: { auth: { tokensFile } } });
    const dev = await connectDevice(gw.mqttUrl, 'ws-1');
    await dev.publishAsync(telemetryTopic('ws-1'), payload(reading(1, 0, { ts: Date.now() })), { qos: 1 });

    const browser = await launchBrowser();
    const { page, errors } = await phonePage(browser);
    const unauthorized: string[] = [];
    page.on('response', (res) => {
      if (res.status() === 401) unauthorized.push(res.url());
    });
    await page.goto(`${gw.httpUrl}/`);
    await page.locator('#token-form').waitFor();
    await page.fill('#token', token);
    await page.click('#token-form button');
    await page.locator('[data-station="ws-1"]').waitFor();
    await expect.poll(() => page.locator('#live').getAttribute('data-live')).toBe('true');
    expect(unauthorized.length).toBeGreaterThan(0);
    // The browser logs each 401 as a failed resource; nothing else may fail.
    expect(errors.filter((e) => !e.includes('401'))).toEqual([]);
  });
});
