/**
 * Runs a built server script (the gateway CLI, or launch/aedes-server.js) as a child process for scripts (benchmarks,
 * demo, chaos) and waits for its one JSON `ready` line on stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface ServerProcess {
  proc: ChildProcess;
  mqttPort: number;
  /** Absent for servers without an HTTP API. */
  httpPort?: number;
  /** SIGTERM, then wait for the exit. Safe to call after the process died. */
  stop(): Promise<void>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
}

export interface ServerOptions {
  /** Prepended to the node invocation, e.g. taskset. */
  command?: string[];
  logLevel?: string;
}

export async function startServerProcess(
  script: string,
  args: string[],
  opts: ServerOptions = {},
): Promise<ServerProcess> {
  const cmd = [...(opts.command ?? []), process.execPath, script, ...args];
  const proc = spawn(cmd[0] as string, cmd.slice(1), {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SENSORGATE_LOG_LEVEL: opts.logLevel ?? 'warn' },
  });
  const end = async (signal: NodeJS.Signals) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill(signal);
    await exited;
  };
  for await (const line of createInterface({ input: proc.stdout })) {
    const e = JSON.parse(line) as { event?: string; mqtt: { port: number }; http?: { port: number } };
    if (e.event === 'ready') {
      return {
        proc,
        mqttPort: e.mqtt.port,
        ...(e.http ? { httpPort: e.http.port } : {}),
        stop: () => end('SIGTERM'),
        kill: () => end('SIGKILL'),
      };
    }
  }
  throw new Error(`${script} exited before it was ready`);
}

export type GatewayProcess = ServerProcess & { httpPort: number };

/** `gateway start ARGS` from dist/. */
export async function startGatewayProcess(args: string[], opts: ServerOptions = {}): Promise<GatewayProcess> {
  return (await startServerProcess('dist/gateway/main.js', ['start', ...args], opts)) as GatewayProcess;
}
