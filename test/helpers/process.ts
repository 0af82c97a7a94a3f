import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { onTestFinished } from 'vitest';
import { builtScript } from './built.js';

export const GATEWAY_MAIN = builtScript('dist/gateway/main.js');

export interface Spawned {
  child: ChildProcess;
  /** Resolves with the process's exit code (or signal name). */
  exited: Promise<number | string>;
  stderr(): string;
}

/** Spawns the built gateway CLI; killed when the test finishes if still running. */
export function spawnGateway(args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(process.execPath, [GATEWAY_MAIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, exited, stderr: () => err };
}

export interface Ready {
  mqtt: { host: string; port: number };
  http: { host: string; port: number };
}

/** Waits for the one JSON `ready` line on stdout. */
export async function waitReady(s: Spawned): Promise<Ready> {
  const lines = createInterface({ input: s.child.stdout! });
  const exited = s.exited.then((code) => {
    throw new Error(`gateway exited (${code}) before ready:\n${s.stderr()}`);
  });
  const ready = (async () => {
    for await (const line of lines) {
      const event = JSON.parse(line) as { event?: string } & Ready;
      if (event.event === 'ready') return event;
    }
    throw new Error('stdout closed before ready');
  })();
  return Promise.race([ready, exited]);
}

export async function startGatewayProcess(dataDir: string, extra: string[] = []): Promise<Spawned & { ready: Ready }> {
  const s = spawnGateway(['start', '--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0', ...extra], {
    SENSORGATE_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
  });
  return { ...s, ready: await waitReady(s) };
}
