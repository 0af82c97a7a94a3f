/**
 * A TCP proxy between the devices and the gateway that injects network faults for real, on the wire: resets,
 * black holes and latency (see faults.ts). Each device connection gets its own upstream connection.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import type { FaultSpec } from './faults.js';
import type { Rng } from './random.js';

export interface ProxyStats {
  connections: number;
  resets: number;
  stalls: number;
}

export interface FaultProxy {
  readonly port: number;
  readonly stats: ProxyStats;
  /** Stops injecting new faults (connections keep flowing); used while a run drains. */
  calm(): void;
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  upstream: Socket;
  stalled: boolean;
  stallTimer?: NodeJS.Timeout;
}

const TICK_MS = 100;

export async function startFaultProxy(
  target: { host: string; port: number },
  spec: FaultSpec,
  rng: Rng,
): Promise<FaultProxy> {
  const links = new Set<Link>();
  const stats: ProxyStats = { connections: 0, resets: 0, stalls: 0 };
  let calm = false;

  /** Forwards src → dst with the configured latency, keeping chunk order; discards while the link is stalled. */
  function pipe(link: Link, src: Socket, dst: Socket): void {
    let lastDue = 0;
    src.on('data', (chunk: Buffer) => {
      if (link.stalled) return;
      if (spec.latency === 0 && spec.jitter === 0) {
        dst.write(chunk);
        return;
      }
      const due = Math.max(Date.now() + spec.latency + rng.next() * spec.jitter, lastDue);
      lastDue = due;
      setTimeout(() => {
        if (!link.stalled && !dst.destroyed) dst.write(chunk);
      }, due - Date.now());
    });
  }

  function drop(link: Link): void {
    clearTimeout(link.stallTimer);
    link.client.destroy();
    link.upstream.destroy();
    links.delete(link);
  }

  const server = createServer((client) => {
    stats.connections++;
    const upstream = connect(target.port, target.host);
    const link: Link = { client, upstream, stalled: false };
    links.add(link);
    pipe(link, client, upstream);
    pipe(link, upstream, client);
    const end = () => drop(link);
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });

  const ticker = setInterval(() => {
    if (calm) return;
    const dt = TICK_MS / 1000;
    for (const link of links) {
      if (link.stalled) continue;
      if (rng.next() < spec.reset * dt) {
        stats.resets++;
        link.client.resetAndDestroy();
        link.upstream.resetAndDestroy();
        drop(link);
      } else if (rng.next() < spec.stall * dt) {
        stats.stalls++;
        link.stalled = true;
        link.stallTimer = setTimeout(() => drop(link), spec.stallMs);
      }
    }
  }, TICK_MS);

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    stats,
    calm() {
      calm = true;
    },
    close() {
      closing ??= (async () => {
        clearInterval(ticker);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const link of [...links]) drop(link);
        await closed;
      })();
      return closing;
    },
  };
}
