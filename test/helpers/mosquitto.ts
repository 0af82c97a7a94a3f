import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { onTestFinished } from 'vitest';
import { tempDir } from './temp-dir.js';

const MOSQUITTO = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';

/** A port the OS just handed out and released; Mosquitto cannot listen on port 0 and report it back. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface Mosquitto {
  port: number;
  url: string;
  /** Stops the broker (SIGTERM: it saves its persistence file). */
  stop(): Promise<void>;
  /** Starts it again on the same port and persistence directory. */
  start(): Promise<void>;
}

/** A real Mosquitto from Debian on a free port with persistence on; stopped when the test finishes. */
export async function startMosquitto(opts: { port?: number } = {}): Promise<Mosquitto> {
  const dir = await tempDir('sensorgate-mosquitto-');
  const port = opts.port ?? (await freePort());
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      // Running as root, Mosquitto would switch to the mosquitto user, which cannot write the temp directory.
      'user root',
      'persistence true',
      `persistence_location ${dir}/`,
      'max_queued_messages 1000000',
      'log_dest stderr',
      // "running" (what start() waits for) is logged at the information level.
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;

  async function start(): Promise<void> {
    const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let log = '';
    await new Promise<void>((resolve, reject) => {
      proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
        log += d;
        if (log.includes(' running')) resolve();
      });
      proc.once('exit', (code) => reject(new Error(`mosquitto exited (${code}):\n${log}`)));
      proc.once('error', reject);
    });
  }

  async function stop(): Promise<void> {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    await exited;
  }

  await start();
  onTestFinished(stop);
  return { port, url: `mqtt://127.0.0.1:${port}`, stop, start };
}

export interface Received {
  topic: string;
  body: Record<string, unknown>;
  qos: number;
}

/** A subscriber on the upstream broker (persistent session, QoS 2), collecting everything the gateway forwards. */
export async function subscribeUpstream(url: string, filter = 'sensorgate/#'): Promise<{ client: MqttClient; received: Received[] }> {
  const client = mqtt.connect(url, { clientId: `cloud-${Math.random().toString(36).slice(2)}`, clean: false, reconnectPeriod: 100 });
  onTestFinished(() => client.endAsync(true));
  const received: Received[] = [];
  client.on('message', (topic, payload, packet) => {
    const body = JSON.parse(payload.toString()) as Record<string, unknown> | Record<string, unknown>[];
    for (const b of Array.isArray(body) ? body : [body]) received.push({ topic, body: b, qos: packet.qos });
  });
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  await client.subscribeAsync(filter, { qos: 2 });
  return { client, received };
}
