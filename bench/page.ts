/**
 * `npm run bench:page`: the page at / with a simulated fleet, in Debian's chromium. Prints what the first load
 * transfers (bytes on the wire, gzip as the gateway sends it) and how long it takes, and writes the screenshots shown
 * in the README (docs/ui-overview.png at 1100 px, docs/ui-phone.png at 390 px).
 *   node dist/bench/page.js [--stations 11] [--screenshots docs]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Request } from 'playwright-core';
import { startGatewayProcess } from '../launch/server-process.js';
import { rssMb } from './proc.js';

const { values } = parseArgs({
  options: {
    stations: { type: 'string', default: '11' },
    screenshots: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const STATIONS = Number(values.stations);

const dir = await mkdtemp(join(tmpdir(), 'sensorgate-page-'));
const gw = await startGatewayProcess(['--data-dir', join(dir, 'data'), '--mqtt-port', '0', '--http-port', '0']);
const base = `http://127.0.0.1:${gw.httpPort}`;

function sim(args: string[]) {
  const child = spawn(
    process.execPath,
    ['dist/device-sim/main.js', 'run', '--url', `mqtt://127.0.0.1:${gw.mqttPort}`, '--seed', 'page', ...args],
    { stdio: 'ignore' },
  );
  return { child, exited: once(child, 'exit') };
}

interface Station {
  id: string;
  silent: boolean;
  counters: { qos0: { received: number }; qos1: { received: number }; qos2: { received: number } };
}

async function stations(): Promise<Station[]> {
  return ((await (await fetch(`${base}/api/v1/devices`)).json()) as { devices: Station[] }).devices;
}

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

let fleet: ReturnType<typeof sim> | undefined;
try {
  // One station sends a few readings a second apart and stops: the page flags it silent after three intervals.
  await sim([
    '--devices',
    '1',
    '--id-prefix',
    'shed-',
    '--qos',
    '1',
    '--interval',
    '1000',
    '--count',
    '5',
    '--ledger',
    join(dir, 'quiet'),
  ]).exited;
  fleet = sim([
    '--devices',
    String(STATIONS),
    '--qos',
    'mix',
    '--interval',
    '2000',
    '--duration',
    '120',
    '--faults',
    'reset=0.03',
    '--ledger',
    join(dir, 'fleet'),
  ]);
  await until(
    'the fleet and the silent station',
    async () => {
      const list = await stations();
      const total = (s: Station) => s.counters.qos0.received + s.counters.qos1.received + s.counters.qos2.received;
      return list.length === STATIONS + 1 && list.every((s) => total(s) >= 5) && list.some((s) => s.silent);
    },
    60_000,
  );

  const browser = await chromium.launch({ executablePath: values.chromium, headless: true, args: ['--no-sandbox'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    const requests: Request[] = [];
    page.on('request', (req) => requests.push(req));
    const started = performance.now();
    await page.goto(`${base}/`);
    await page.locator('[data-station]').nth(STATIONS).waitFor();
    const rendered = performance.now() - started;
    // What the first load asked for, up to the stations on screen; the live stream never ends, so it is left out.
    const first = requests.filter((req) => !req.url().endsWith('/api/v1/events'));
    const loaded = await Promise.all(
      first.map(async (req) => {
        await req.response();
        const sizes = await req.sizes();
        return { url: req.url(), bytes: sizes.responseBodySize + sizes.responseHeadersSize };
      }),
    );
    const bytes = loaded.reduce((sum, r) => sum + r.bytes, 0);
    console.log(`first load: ${loaded.length} requests, ${bytes} bytes transferred (headers included, gzip)`);
    for (const r of loaded) console.log(`  ${String(r.bytes).padStart(7)}  ${r.url.replace(base, '')}`);
    console.log(
      `stations listed ${rendered.toFixed(0)} ms after navigation; gateway RSS ${await rssMb(gw.proc.pid as number)} MB`,
    );
    if (values.screenshots) {
      await page.screenshot({ path: join(values.screenshots, 'ui-overview.png'), fullPage: true });
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
      const small = await phone.newPage();
      await small.goto(`${base}/`);
      await small.locator('[data-station]').nth(STATIONS).waitFor();
      await small.screenshot({ path: join(values.screenshots, 'ui-phone.png') });
      console.log(`screenshots in ${values.screenshots}/ui-overview.png and ui-phone.png`);
    }
  } finally {
    await browser.close();
  }
} finally {
  fleet?.child.kill('SIGTERM');
  if (fleet) await fleet.exited;
  await gw.stop();
  await rm(dir, { recursive: true, force: true });
}
