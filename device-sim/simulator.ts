/** A fleet run: devices, the fault proxy in front of the gateway, progress, and a drain at the end. */
import type { DeviceEncoding } from '../gateway/domain/wire.js';
import { readFileSync } from 'node:fs';
import { SimDevice, type DeviceStats, type DeviceTls } from './device.js';
import { hasNetworkFaults, type FaultSpec } from './faults.js';
import { openLedger } from './ledger.js';
import { startFaultProxy, type FaultProxy, type ProxyStats } from './proxy.js';
import { createRng } from './random.js';

const MIX: readonly DeviceEncoding[] = ['cbor', 'cbor-device', 'json'];

/** `mix`: a third of the fleet each writes CBOR as cbor-x does, CBOR as device libraries do, and JSON. */
function encodingOf(encoding: DeviceEncoding | 'mix', index: number): DeviceEncoding {
  return encoding === 'mix' ? (MIX[index % MIX.length] as DeviceEncoding) : encoding;
}

export interface SimConfig {
  url: string;
  devices: number;
  qos: 0 | 1 | 2 | 'mix';
  intervalMs: number;
  durationS?: number | undefined;
  count?: number | undefined;
  encoding: DeviceEncoding | 'mix';
  seed: string;
  ledgerDir: string;
  faults: FaultSpec;
  /** `{id}` is replaced by each device's id: a gateway with users wants one user per device, named as the device. */
  username?: string | undefined;
  password?: string | undefined;
  /** For mqtts:// and wss:// URLs: the CA file, and a client certificate and key file each (`{id}` as above). */
  tls?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined;
  idPrefix: string;
  topicPrefix: string;
  maxBuffer: number;
  /** After the run, how long to wait for outstanding acks before giving up on them. */
  drainMs: number;
}

export interface Progress {
  elapsedMs: number;
  devices: number;
  connected: number;
  /** Readings sent per second over the last interval. */
  rate: number;
  totals: Omit<DeviceStats, 'connected'>;
  proxy: ProxyStats;
  draining: boolean;
}

export interface RunSummary extends Progress {
  /** Readings still unacked when the drain deadline passed. */
  unackedAtEnd: number;
}

const TICK_MS = 250;

function totalsOf(devices: readonly SimDevice[]): Progress['totals'] {
  const t = { produced: 0, sent: 0, acked: 0, inFlight: 0, buffered: 0, dropped: 0, reboots: 0, resent: 0 };
  for (const d of devices) {
    for (const k of Object.keys(t) as (keyof typeof t)[]) t[k] += d.stats[k];
  }
  return t;
}

function qosOf(config: SimConfig, index: number): 0 | 1 | 2 {
  return config.qos === 'mix' ? ((index % 3) as 0 | 1 | 2) : config.qos;
}

/** Runs the fleet until the duration or count is reached or `signal` aborts, then drains and stops everything. */
/** The TLS files of one device, read now: a missing one should stop the run before any device starts. */
function tlsFiles(tls: SimConfig['tls'], id: string): DeviceTls | undefined {
  if (!tls) return undefined;
  const read = (path: string | undefined) =>
    path === undefined ? {} : { value: readFileSync(path.replaceAll('{id}', id)) };
  const [ca, cert, key] = [read(tls.ca), read(tls.cert), read(tls.key)];
  return {
    ...(ca.value ? { ca: ca.value } : {}),
    ...(cert.value ? { cert: cert.value } : {}),
    ...(key.value ? { key: key.value } : {}),
  };
}

export async function runSimulation(
  config: SimConfig,
  opts: { onProgress?: (p: Progress) => void; signal?: AbortSignal; now?: () => number } = {},
): Promise<RunSummary> {
  const now = opts.now ?? Date.now;
  const rng = createRng(config.seed);
  const ledger = openLedger(config.ledgerDir);
  let proxy: FaultProxy | undefined;
  const devices: SimDevice[] = [];
  const started = now();
  try {
    let url = config.url;
    if (hasNetworkFaults(config.faults)) {
      const target = new URL(config.url);
      if (target.protocol !== 'mqtt:') throw new Error('network faults need an mqtt:// (plain TCP) gateway url');
      proxy = await startFaultProxy(
        { host: target.hostname, port: Number(target.port || 1883) },
        config.faults,
        rng.fork('proxy'),
      );
      url = `mqtt://127.0.0.1:${proxy.port}`;
    }
    for (let i = 0; i < config.devices; i++) {
      const id = `${config.idPrefix}${i}`;
      devices.push(
        new SimDevice({
          id,
          url,
          qos: qosOf(config, i),
          encoding: encodingOf(config.encoding, i),
          intervalMs: config.intervalMs,
          count: config.count,
          topicPrefix: config.topicPrefix,
          maxBuffer: config.maxBuffer,
          username: config.username?.replaceAll('{id}', id),
          password: config.password,
          tls: tlsFiles(config.tls, id),
          faults: config.faults,
          ledger,
          rng: rng.fork(id),
          now,
        }),
      );
    }
    for (const d of devices) d.start();

    const proxyStats = () => proxy?.stats ?? { connections: 0, resets: 0, stalls: 0 };
    let lastSent = 0;
    let lastAt = started;
    const progress = (draining: boolean): Progress => {
      const totals = totalsOf(devices);
      const at = now();
      const rate = at > lastAt ? ((totals.sent - lastSent) * 1000) / (at - lastAt) : 0;
      lastSent = totals.sent;
      lastAt = at;
      return {
        elapsedMs: now() - started,
        devices: devices.length,
        connected: devices.filter((d) => d.stats.connected).length,
        rate,
        totals,
        proxy: { ...proxyStats() },
        draining,
      };
    };

    const endAt = config.durationS === undefined ? Infinity : started + config.durationS * 1000;
    let drainDeadline = Infinity;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const draining = drainDeadline !== Infinity;
        opts.onProgress?.(progress(draining));
        if (!draining && (now() >= endAt || devices.every((d) => d.done) || opts.signal?.aborted)) {
          proxy?.calm();
          for (const d of devices) d.quiesce();
          drainDeadline = now() + config.drainMs;
        }
        if (
          drainDeadline !== Infinity &&
          (devices.every((d) => d.unacked === 0) || now() >= drainDeadline || opts.signal?.aborted)
        ) {
          clearInterval(timer);
          resolve();
        }
      }, TICK_MS);
    });
    const last = progress(true);
    return { ...last, unackedAtEnd: devices.reduce((n, d) => n + d.unacked, 0) };
  } finally {
    await Promise.all(devices.map((d) => d.stop()));
    await proxy?.close();
    ledger.close();
  }
}
