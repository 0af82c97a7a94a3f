import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { GATEWAY_MAIN, spawnGateway, startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Runs the CLI with `input` on stdin; resolves with its exit code and output. */
async function cli(args: string[], input = '', env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [GATEWAY_MAIN, ...args], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(input);
  const [code] = (await once(child, 'exit')) as [number];
  return { code, stdout, stderr };
}

async function connack(port: number, clientId: string, username: string, password: string): Promise<number> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, username, password, reconnectPeriod: 0 });
  onTestFinished(() => client.endAsync(true));
  return new Promise((resolve) => {
    client.once('connect', () => resolve(0));
    client.once('error', (err) => resolve((err as { code?: number }).code ?? -1));
  });
}

describe('security from the command line', () => {
  it('refuses to listen beyond loopback without authentication, naming what to configure', async () => {
    const s = spawnGateway(['start', '--host', '0.0.0.0', '--mqtt-port', '0', '--http-port', '0']);
    expect(await s.exited).toBe(2);
    expect(s.stderr()).toMatch(/mqtt\.host: 0\.0\.0\.0 is not loopback.*auth\.usersFile.*gateway passwd add/);
    expect(s.stderr()).toMatch(/http\.host/);
  });

  it('manages users with passwd, listens on all interfaces with them, and re-reads them on SIGHUP', async () => {
    const dir = await tempDir();
    const users = join(dir, 'users');
    const add = await cli(['passwd', 'add', 'st-1', '--role', 'device', '--users', users], 'pw-1\n');
    expect(add).toMatchObject({ code: 0 });
    expect((await stat(users)).mode & 0o777).toBe(0o600);
    expect((await cli(['passwd', 'add', 'bad/name', '--role', 'device', '--users', users], 'x\n')).code).toBe(2);
    expect((await cli(['passwd', 'list', '--users', users])).stdout).toBe('st-1\tdevice\n');

    const config = join(dir, 'gateway.yaml');
    await writeFile(config, `mqtt:\n  host: 0.0.0.0\nauth:\n  usersFile: ${users}\n`);
    const gw = await startGatewayProcess(join(dir, 'data'), ['--config', config]);
    const port = gw.ready.mqtt.port;
    expect(await connack(port, 'st-1', 'st-1', 'pw-1')).toBe(0);
    expect(await connack(port, 'st-2', 'st-2', 'pw-2')).toBe(4);

    expect((await cli(['passwd', 'add', 'st-2', '--role', 'device', '--users', users], 'pw-2\n')).code).toBe(0);
    gw.child.kill('SIGHUP');
    await expect.poll(() => connack(port, 'st-2', 'st-2', 'pw-2'), { timeout: 5000 }).toBe(0);
    expect((await cli(['passwd', 'remove', 'st-1', '--users', users])).code).toBe(0);
    expect((await cli(['passwd', 'list', '--users', users])).stdout).toBe('st-2\tdevice\n');
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
  });

  it('makes HTTP API tokens that are shown once and kept hashed, and opens the API beyond loopback with them', async () => {
    const dir = await tempDir();
    const tokens = join(dir, 'tokens');
    const add = await cli(['token', 'add', 'grafana', '--scope', 'read', '--tokens', tokens]);
    expect(add.code).toBe(0);
    const token = add.stdout.trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await readFile(tokens, 'utf8')).not.toContain(token);
    expect((await cli(['token', 'list', '--tokens', tokens])).stdout).toBe('grafana\tread\n');
    const config = join(dir, 'gateway.yaml');
    await writeFile(config, `http:\n  host: 0.0.0.0\nauth:\n  tokensFile: ${tokens}\n`);
    const gw = await startGatewayProcess(join(dir, 'data'), ['--config', config]);
    const url = `http://127.0.0.1:${gw.ready.http.port}/api/v1/stats`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it('keeps the upstream password out of check-config, from the config, a file or the environment', async () => {
    const dir = await tempDir();
    const secretFile = join(dir, 'secret');
    await writeFile(secretFile, 'from-file\n');
    const inConfig = join(dir, 'a.yaml');
    await writeFile(inConfig, 'upstream:\n  password: in-config\n');
    const fromFile = join(dir, 'b.yaml');
    await writeFile(fromFile, `upstream:\n  passwordFile: ${secretFile}\n`);
    for (const [args, env] of [
      [['check-config', '--config', inConfig], {}],
      [['check-config', '--config', fromFile], {}],
      [['check-config'], { SENSORGATE_UPSTREAM_PASSWORD: 'from-env' }],
    ] as const) {
      const out = await cli([...args], '', env);
      expect(out.code).toBe(0);
      expect(out.stdout).not.toMatch(/in-config|from-file|from-env/);
      expect(JSON.parse(out.stdout)).toMatchObject({ config: { upstream: { password: '(redacted)' } } });
    }
  });
});
