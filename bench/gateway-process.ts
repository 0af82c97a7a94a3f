/** Runs the built gateway CLI as a child process for scripts (benchmarks, demo, chaos) and waits for its ready line. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface GatewayProcess {
  proc: ChildProcess;
  mqttPort: number;
  httpPort: number;
  /** SIGTERM, then wait for the exit. Safe to call after the process died. */
  stop(): Promise<void>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
}

/** `command` is prepended to the node invocation (e.g. taskset); extra args follow `gateway start`. */
export async function startGatewayProcess(args: string[], opts: { command?: string[]; logLevel?: string } = {}): Promise<GatewayProcess> {
  const cmd = [...(opts.command ?? []), process.execPath, 'dist/gateway/main.js', 'start', ...args];
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
    const e = JSON.parse(line) as { event?: string; mqtt: { port: number }; http: { port: number } };
    if (e.event === 'ready') return { proc, mqttPort: e.mqtt.port, httpPort: e.http.port, stop: () => end('SIGTERM'), kill: () => end('SIGKILL') };
  }
  throw new Error('the gateway exited before it was ready');
}
