/** Runs a real nats-server (Debian's, with JetStream) in a directory of the caller's; no test framework here. */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NatsConnection, StoredMsg } from 'nats';
import { freePort } from './mosquitto-process.js';
import { spawnLogged } from './spawn-logged.js';

export const NATS_SERVER = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

export interface NatsProcess {
  port: number;
  url: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Starts it (again) with the same ports and JetStream directory. */
  start(): Promise<void>;
  /** SIGTERM. */
  stop(): Promise<void>;
  /** SIGKILL: a crash of the node. */
  kill(): Promise<void>;
}

export interface NatsOptions {
  port: number;
  name: string;
  /** This node's cluster port and every node's (its own included), for a JetStream cluster. */
  cluster?: { port: number; routes: number[] };
}

export async function natsProcess(dir: string, opts: NatsOptions): Promise<NatsProcess> {
  if (!existsSync(NATS_SERVER)) {
    throw new Error(`nats-server not found at ${NATS_SERVER}: apt-get install nats-server, or set NATS_SERVER_BIN`);
  }
  await mkdir(join(dir, 'js'), { recursive: true });
  const conf = join(dir, 'nats.conf');
  await writeFile(
    conf,
    [
      `server_name: ${opts.name}`,
      `listen: 127.0.0.1:${opts.port}`,
      `jetstream { store_dir: "${join(dir, 'js')}" }`,
      ...(opts.cluster
        ? [
            `cluster { name: sensorgate, listen: 127.0.0.1:${opts.cluster.port}, routes: [${opts.cluster.routes
              .map((p) => `nats://127.0.0.1:${p}`)
              .join(', ')}] }`,
          ]
        : []),
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  const end = async (signal: NodeJS.Signals) => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill(signal);
    await exited;
  };
  return {
    port: opts.port,
    url: `nats://127.0.0.1:${opts.port}`,
    get pid() {
      return child?.pid;
    },
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async start() {
      child = await spawnLogged([NATS_SERVER, '-c', conf], 'Server is ready');
    },
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
  };
}

/** A JetStream cluster of `n` nodes on loopback, started. */
export async function natsCluster(dir: string, n: number): Promise<NatsProcess[]> {
  const ports = await Promise.all(Array.from({ length: n }, async () => [await freePort(), await freePort()] as const));
  const routes = ports.map(([, c]) => c);
  const nodes = await Promise.all(
    ports.map(([port, cluster], i) =>
      natsProcess(join(dir, `n${i}`), { port, name: `n${i}`, cluster: { port: cluster, routes } }),
    ),
  );
  await Promise.all(nodes.map((node) => node.start()));
  return nodes;
}

/** Every message of a JetStream stream, in stream order, read in batches of requests. */
export async function* streamMessages(nc: NatsConnection, stream: string): AsyncIterable<StoredMsg> {
  const jsm = await nc.jetstreamManager();
  const last = (await jsm.streams.info(stream)).state.last_seq;
  for (let seq = 1; seq <= last; seq += 200) {
    const batch = Array.from({ length: Math.min(200, last - seq + 1) }, (_, i) =>
      jsm.streams.getMessage(stream, { seq: seq + i }),
    );
    yield* await Promise.all(batch);
  }
}
