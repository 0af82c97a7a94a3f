import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseFaults } from '../../device-sim/faults.js';
import { runSimulation, type SimConfig } from '../../device-sim/simulator.js';
import { verify } from '../../device-sim/verify.js';
import { deviceRange } from '../../gateway/store/keys.js';
import { decodeValue } from '../../gateway/store/records.js';
import { api } from '../helpers/api.js';
import { startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { builtScript } from '../helpers/built.js';

function simConfig(port: number, ledgerDir: string, extra: Partial<SimConfig>): SimConfig {
  return {
    url: `mqtt://127.0.0.1:${port}`,
    devices: 9,
    qos: 'mix',
    intervalMs: 50,
    encoding: 'cbor',
    seed: 'fleet-test',
    ledgerDir,
    faults: parseFaults('none'),
    idPrefix: 'ws-',
    topicPrefix: 'sensors',
    maxBuffer: 1000,
    drainMs: 15_000,
    ...extra,
  };
}

describe('device-sim against a real gateway', () => {
  it('measures the promised semantics under resets, black holes, latency, reboots and duplicate re-sends', async () => {
    const dir = await tempDir();
    const gw = await startGatewayProcess(join(dir, 'data'));
    const ledgerDir = join(dir, 'ledger');
    const summary = await runSimulation(
      simConfig(gw.ready.mqtt.port, ledgerDir, {
        durationS: 6,
        encoding: 'json',
        faults: parseFaults('reset=0.2,stall=0.15,stallMs=500,latency=2,jitter=3,reboot=0.05,dup=0.1'),
      }),
    );
    expect(summary.unackedAtEnd).toBe(0);
    expect(summary.proxy.resets).toBeGreaterThan(0);
    expect(summary.proxy.stalls).toBeGreaterThan(0);
    expect(summary.totals.reboots).toBeGreaterThan(0);
    expect(summary.totals.resent).toBeGreaterThan(0);

    const report = await verify(ledgerDir, `http://127.0.0.1:${gw.ready.http.port}`);
    expect(report.violations).toEqual([]);
    const [q0, q1, q2] = report.rows;
    for (const row of [q1, q2]) {
      expect(row?.sent).toBeGreaterThan(100);
      expect(row?.lostAfterAck).toBe(0);
      expect(row?.duplicatesStored).toBe(0);
    }
    expect(q0?.duplicatesStored).toBe(0);
    // The gateway's own measure of loss (sequence gaps, per device) is checked against the ledger's ground truth: it
    // never claims more than was lost on the way or never sent by the device (a tail lost before a reboot or the end is
    // not a gap it can see).
    const base = `http://127.0.0.1:${gw.ready.http.port}`;
    const devices = (await api(base).devices()).body.devices;
    const gaps = devices.reduce((n, d) => n + d.counters.qos0.missing, 0);
    expect(gaps).toBeLessThanOrEqual((q0?.lost ?? 0) + report.droppedByDevices);
    // The gateway's own count agrees with what verify found in its store.
    const stats = (await api(base).stats()).body;
    expect(stats.qos0?.stored).toBe(q0?.stored);
    // Every re-send the gateway acked was recognised and not stored again: a duplicate, or stale when it came from an
    // older boot than the previous one.
    const recognised = devices.reduce(
      (n, d) =>
        n + d.counters.qos1.duplicate + d.counters.qos1.stale + d.counters.qos2.duplicate + d.counters.qos2.stale,
      0,
    );
    expect(recognised).toBeGreaterThanOrEqual(report.resent);
  });

  it('verify exits non-zero and names the device and seq when a reading is missing or stored twice', async () => {
    const dir = await tempDir();
    const dataDir = join(dir, 'data');
    const ledgerDir = join(dir, 'ledger');
    const first = await startGatewayProcess(dataDir);
    await runSimulation(simConfig(first.ready.mqtt.port, ledgerDir, { devices: 3, qos: 1, count: 20, intervalMs: 10 }));
    first.child.kill('SIGTERM');
    const exitCode = await first.exited;
    if (exitCode !== 0) console.log(first.stderr());
    expect(exitCode).toBe(0);

    // Tamper with the store: remove ws-1's seq 5, store ws-2's seq 7 a second time under another arrival number.
    const db = new ClassicLevel<string, Uint8Array>(dataDir, { valueEncoding: 'view' });
    const readings = db.sublevel<string, Uint8Array>('readings', { valueEncoding: 'view' });
    const find = async (device: string, seq: number) => {
      for await (const [key, value] of readings.iterator(deviceRange(device))) {
        if ((decodeValue(value) as { seq: number }).seq === seq) return [key, value] as const;
      }
      throw new Error(`no ${device} ${seq}`);
    };
    const [removeKey] = await find('ws-1', 5);
    const [copyKey, copyValue] = await find('ws-2', 7);
    await readings.del(removeKey);
    await readings.put(copyKey.replace(/[0-9a-f]{14}$/, 'ffffffffffffff'), copyValue);
    await db.close();

    const second = await startGatewayProcess(dataDir);
    const cli = spawn(
      process.execPath,
      [
        builtScript('dist/device-sim/main.js'),
        'verify',
        '--ledger',
        ledgerDir,
        '--gateway',
        `http://127.0.0.1:${second.ready.http.port}`,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    onTestFinished(() => void cli.kill());
    let out = '';
    cli.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const [code] = await once(cli, 'exit');
    expect(code).toBe(1);
    expect(out).toContain('lost-after-ack: device ws-1 boot 1 seq 5 (QoS 1)');
    expect(out).toContain('stored-twice: device ws-2 boot 1 seq 7 (QoS 1)');
    expect(out).toMatch(/VIOLATED: 1 acked lost, 1 stored twice/);
  });
});
