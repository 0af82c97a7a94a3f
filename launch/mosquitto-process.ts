/** Runs a real Mosquitto (Debian's) with persistence in a directory of the caller's; no test framework here. */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { spawnLogged } from './spawn-logged.js';

export const MOSQUITTO = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';

/** A port the OS just handed out and released; Mosquitto cannot listen on port 0 and report it back. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface MosquittoProcess {
  port: number;
  url: string;
  /** The broker's pid (undefined before start and after stop). */
  readonly pid: number | undefined;
  /** Whether the broker process is alive. */
  readonly running: boolean;
  /** Stops the broker (SIGTERM: it saves its persistence file). */
  stop(): Promise<void>;
  /** Starts it (again) on the same port and persistence directory. */
  start(): Promise<void>;
}

/** `command` is prepended to the broker's invocation, e.g. taskset. */
export async function mosquittoProcess(dir: string, port: number, command: string[] = []): Promise<MosquittoProcess> {
  if (!existsSync(MOSQUITTO)) {
    throw new Error(`Mosquitto not found at ${MOSQUITTO}: install it (apt-get install mosquitto) or set MOSQUITTO_BIN`);
  }
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      // Running as root, Mosquitto would switch to the mosquitto user, which cannot write the directory.
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
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    get pid() {
      return child?.pid;
    },
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async start() {
      // "running" is logged at the information level.
      child = await spawnLogged([...command, MOSQUITTO, '-c', conf], ' running');
    },
    async stop() {
      const proc = child;
      child = undefined;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
