import { pino } from 'pino';
import { onTestFinished } from 'vitest';
import { loadConfig } from '../../gateway/config.js';
import { type Addresses, createGateway, type Gateway } from '../../gateway/gateway.js';
import type { Db } from '../../gateway/store/level-store.js';
import { tempDir } from './temp-dir.js';

export interface TestGateway {
  gateway: Gateway;
  /** Every listener's bound address. */
  addresses: Addresses;
  mqttUrl: string;
  httpUrl: string;
  dataDir: string;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  dataDir?: string;
  createDb?: (dir: string) => Db;
  /** Raw config merged over the test defaults (ports 0, temp data dir, silent log). */
  config?: Record<string, unknown>;
  /** The gateway's clock. */
  now?: () => number;
}

/** An in-process gateway on ports 0 over a real LevelDB; closed when the test finishes. */
export async function startTestGateway(opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const dataDir = opts.dataDir ?? (await tempDir());
  const extra = opts.config ?? {};
  const config = loadConfig({
    ...extra,
    mqtt: { ...(extra.mqtt as object | undefined), port: 0 },
    http: { ...(extra.http as object | undefined), port: 0 },
    store: { dataDir, ...(extra.store as object | undefined) },
    log: { level: 'silent' },
  });
  const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const gateway = createGateway(config, {
    log,
    ...(opts.createDb ? { createDb: opts.createDb } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  onTestFinished(() => gateway.close());
  const addresses = await gateway.start();
  const { mqtt, http } = addresses;
  return {
    gateway,
    addresses,
    mqttUrl: `mqtt://${mqtt.host}:${mqtt.port}`,
    httpUrl: `http://${http.host}:${http.port}`,
    dataDir,
    close: () => gateway.close(),
  };
}
