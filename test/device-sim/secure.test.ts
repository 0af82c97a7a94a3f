import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addUser } from '../../gateway/auth/passwd.js';
import { parseFaults } from '../../device-sim/faults.js';
import { runSimulation, type SimConfig } from '../../device-sim/simulator.js';
import { api } from '../helpers/api.js';
import { makeCerts } from '../helpers/certs.js';
import { startTestGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/temp-dir.js';

async function simConfig(url: string, extra: Partial<SimConfig>): Promise<SimConfig> {
  return {
    url,
    devices: 3,
    qos: 1,
    intervalMs: 50,
    count: 10,
    encoding: 'cbor',
    seed: 'secure-test',
    ledgerDir: join(await tempDir(), 'ledger'),
    faults: parseFaults('none'),
    idPrefix: 'ws-',
    topicPrefix: 'sensors',
    maxBuffer: 100,
    drainMs: 5000,
    ...extra,
  };
}

const storedPerDevice = async (http: string) =>
  (await api(http).devices()).body.devices.map((d) => [d.id, d.counters.qos1.stored]);

describe('device-sim against a secured gateway', () => {
  it('logs each device in as its own user, over mqtt:// and ws://', async () => {
    const dir = await tempDir();
    const usersFile = join(dir, 'users');
    for (const id of ['ws-0', 'ws-1', 'ws-2']) await addUser(usersFile, id, 'device', 'fleet-pw');
    const gw = await startTestGateway({ config: { auth: { usersFile }, mqtt: { ws: { port: 0 } } } });
    const tcp = await runSimulation(await simConfig(gw.mqttUrl, { username: '{id}', password: 'fleet-pw' }));
    expect(tcp.unackedAtEnd).toBe(0);
    const ws = `ws://127.0.0.1:${gw.addresses.ws?.port}/mqtt`;
    const overWs = await runSimulation(await simConfig(ws, { username: '{id}', password: 'fleet-pw', seed: 'ws' }));
    expect(overWs.unackedAtEnd).toBe(0);
    expect(await storedPerDevice(gw.httpUrl)).toEqual([
      ['ws-0', 20],
      ['ws-1', 20],
      ['ws-2', 20],
    ]);
    const refused = await runSimulation(
      await simConfig(gw.mqttUrl, { username: '{id}', password: 'wrong', drainMs: 0 }),
    );
    expect(refused.totals.acked).toBe(0);
  });

  it('connects each device over mqtts:// with its own client certificate', async () => {
    const certs = await makeCerts(['ws-0', 'ws-1', 'ws-2']);
    const gw = await startTestGateway({
      config: {
        mqtt: { tls: { port: 0, cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, clientCerts: 'require' } },
      },
    });
    const certDir = join(certs.ca, '..');
    const summary = await runSimulation(
      await simConfig(`mqtts://127.0.0.1:${gw.addresses.mqtts?.port}`, {
        tls: { ca: certs.ca, cert: join(certDir, '{id}.crt'), key: join(certDir, '{id}.key') },
      }),
    );
    expect(summary.unackedAtEnd).toBe(0);
    expect(await storedPerDevice(gw.httpUrl)).toEqual([
      ['ws-0', 10],
      ['ws-1', 10],
      ['ws-2', 10],
    ]);
  });
});
