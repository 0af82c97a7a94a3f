import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnGateway, waitReady } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

const VERIFYING = 'verifying the store: it was not closed cleanly';

describe('start-up as a service sees it', () => {
  it('reads the whole store only after an unclean shutdown, with progress in the log', async () => {
    const dataDir = join(await tempDir(), 'data');
    const info = ['--config', join(import.meta.dirname, '..', '..', 'config', 'gateway.yaml')];
    const env = { SENSORGATE_LOG_LEVEL: 'info' };
    const start = () => {
      const s = spawnGateway(['start', '--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0', ...info], env);
      return s;
    };
    const untilReady = (s: ReturnType<typeof start>) => waitReady(s);

    const first = start();
    await untilReady(first);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const clean = start();
    await untilReady(clean);
    expect(clean.stderr()).toContain('"msg":"store open"');
    expect(clean.stderr()).not.toContain('verifying the store');
    clean.child.kill('SIGKILL');
    await clean.exited;

    const afterCrash = start();
    await untilReady(afterCrash);
    expect(afterCrash.stderr()).toContain(VERIFYING);
    expect(afterCrash.stderr()).toMatch(/"records":\d+.*"msg":"store verified"/);
    afterCrash.child.kill('SIGTERM');
    expect(await afterCrash.exited).toBe(0);
  });

  it('logs the config file in use, and refuses an explicit --config that does not exist', async () => {
    const dir = await tempDir();
    const shipped = join(import.meta.dirname, '..', '..', 'config', 'gateway.yaml');
    const args = ['--data-dir', join(dir, 'data'), '--mqtt-port', '0', '--http-port', '0'];
    const gw = spawnGateway(['start', '--config', shipped, ...args], { SENSORGATE_LOG_LEVEL: 'info' });
    await waitReady(gw);
    expect(gw.stderr()).toContain(`"msg":"config ${shipped}"`);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);

    const missing = join(dir, 'nope.yaml');
    const refused = spawnGateway(['start', '--config', missing, ...args]);
    expect(await refused.exited).toBe(2);
    expect(refused.stderr()).toContain(`cannot read config ${missing}`);
  });

  it('npm start runs the built gateway and never builds', async () => {
    const pkg = JSON.parse(await readFile(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.start).toBe('node dist/gateway/main.js start');
    expect(pkg.scripts.prestart).toBeUndefined();
  });
});
