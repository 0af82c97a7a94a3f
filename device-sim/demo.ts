/**
 * `npm run demo`: a gateway on a temporary data dir, a mixed-QoS fleet pushed through the fault proxy for about a
 * minute, then the measured semantics table. Exits 1 if a guarantee was violated.
 *   node dist/device-sim/demo.js [--seconds 60] [--devices 30] [--seed demo]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startGatewayProcess } from '../launch/server-process.js';
import { parseFaults } from './faults.js';
import { createProgressPrinter } from './progress.js';
import { runSimulation } from './simulator.js';
import { formatReport, verify } from './verify.js';

const DEMO_FAULTS = 'reset=0.05,stall=0.03,stallMs=2000,latency=5,jitter=10,reboot=0.01,dup=0.03';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    devices: { type: 'string', default: '30' },
    interval: { type: 'string', default: '200' },
    seed: { type: 'string', default: 'demo' },
    faults: { type: 'string', default: DEMO_FAULTS },
  },
});

const work = await mkdtemp(join(tmpdir(), 'sensorgate-demo-'));
const gateway = await startGatewayProcess(['--data-dir', join(work, 'data'), '--mqtt-port', '0', '--http-port', '0']);
let code = 1;
try {
  const ledgerDir = join(work, 'ledger');
  process.stderr.write(
    `gateway on mqtt ${gateway.mqttPort}, http ${gateway.httpPort}; ${values.devices} devices, mixed QoS, faults ${values.faults}\n`,
  );
  const printer = createProgressPrinter(process.stderr);
  const summary = await runSimulation(
    {
      url: `mqtt://127.0.0.1:${gateway.mqttPort}`,
      devices: Number(values.devices),
      qos: 'mix',
      intervalMs: Number(values.interval),
      durationS: Number(values.seconds),
      encoding: 'mix',
      seed: values.seed,
      ledgerDir,
      faults: parseFaults(values.faults),
      idPrefix: 'ws-',
      topicPrefix: 'sensors',
      maxBuffer: 1000,
      drainMs: 10_000,
    },
    { onProgress: (p) => printer.update(p) },
  );
  printer.done();
  const report = await verify(ledgerDir, `http://127.0.0.1:${gateway.httpPort}`);
  const t = summary.totals;
  process.stdout.write(
    `\nfaults injected: ${summary.proxy.resets} connection resets, ${summary.proxy.stalls} black holes, ${t.reboots} device reboots, ${t.resent} duplicate re-sends\n\n`,
  );
  process.stdout.write(`${formatReport(report)}\n`);
  code = report.ok ? 0 : 1;
} finally {
  await gateway.stop();
  await rm(work, { recursive: true, force: true });
}
process.exitCode = code;
