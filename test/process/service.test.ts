import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config.js';
import { readConfigFile } from '../../gateway/config.js';

const DEPLOY = join(import.meta.dirname, '..', '..', 'deploy');

describe('the systemd service', () => {
  it('passes systemd-analyze verify without a warning', async () => {
    const { stderr } = await promisify(execFile)('systemd-analyze', ['verify', join(DEPLOY, 'sensorgate.service')]);
    expect(stderr).toBe('');
  });

  it('ships a config that is valid and keeps the data in the StateDirectory', async () => {
    const { raw } = await readConfigFile(join(DEPLOY, 'gateway.yaml'), false);
    const config = loadConfig(raw);
    expect(config.store.dataDir).toBe('/var/lib/sensorgate');
    expect(config.auth.usersFile).toBe('/etc/sensorgate/users');
  });
});
