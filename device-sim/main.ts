#!/usr/bin/env node
/** device-sim CLI: `run` a fleet of simulated weather stations, `verify` a ledger against a gateway. */
import { parseArgs } from 'node:util';
import { loadSimConfig, toSimConfig } from './config.js';
import { createProgressPrinter } from './progress.js';
import { runSimulation } from './simulator.js';
import { formatReport, verify } from './verify.js';

const DEFAULT_CONFIG = 'config/device-sim.yaml';

const USAGE = `usage:
  device-sim run [--url mqtt://127.0.0.1:1883] [--devices N] [--qos 0|1|2|mix] [--interval MS]
                 [--duration S | --count K] [--encoding cbor|cbor-device|json|mix] [--seed X] [--ledger DIR]
                 [--faults SPEC] [--username U --password P] [--ca F --cert F --key F] [--id-prefix P]
                 [--config FILE]
  device-sim verify --ledger DIR [--gateway http://127.0.0.1:8080] [--json] [--config FILE]

  --faults  comma-separated: reset=P,stall=P,stallMs=MS,latency=MS,jitter=MS,reboot=P,dup=P
            (reset/stall/reboot: probability per connection or device per second; dup: per reading)
  --username, --cert, --key: {id} is replaced by each device's id (one user or certificate per device);
            --url may be mqtt://, mqtts:// (with --ca, --cert, --key), ws:// or wss://
  Defaults come from ${DEFAULT_CONFIG}.`;

const num = (s: string | undefined): number | string | undefined =>
  s === undefined ? undefined : /^-?\d+(\.\d+)?$/.test(s) ? Number(s) : s;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      url: { type: 'string' },
      gateway: { type: 'string' },
      devices: { type: 'string' },
      qos: { type: 'string' },
      interval: { type: 'string' },
      duration: { type: 'string' },
      count: { type: 'string' },
      encoding: { type: 'string' },
      seed: { type: 'string' },
      ledger: { type: 'string' },
      faults: { type: 'string' },
      username: { type: 'string' },
      password: { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      'id-prefix': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  if (values.help || (command !== 'run' && command !== 'verify')) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (values.duration !== undefined && values.count !== undefined) {
    process.stderr.write('--duration and --count are exclusive\n');
    return 2;
  }
  const qos = values.qos === undefined ? undefined : values.qos === 'mix' ? 'mix' : num(values.qos);
  const config = await loadSimConfig(values.config ?? DEFAULT_CONFIG, values.config === undefined, {
    url: values.url,
    gateway: values.gateway,
    devices: num(values.devices),
    qos,
    intervalMs: num(values.interval),
    durationS: num(values.duration),
    count: values.duration !== undefined ? null : num(values.count),
    encoding: values.encoding,
    seed: values.seed,
    ledgerDir: values.ledger,
    faults: values.faults,
    username: values.username,
    password: values.password,
    ca: values.ca,
    cert: values.cert,
    key: values.key,
    idPrefix: values['id-prefix'],
  });

  if (command === 'verify') {
    const report = await verify(config.ledgerDir, config.gateway);
    process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : `${formatReport(report)}\n`);
    return report.ok ? 0 : 1;
  }

  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const printer = createProgressPrinter(process.stderr);
  const summary = await runSimulation(toSimConfig(config), {
    onProgress: (p) => printer.update(p),
    signal: abort.signal,
  });
  printer.done();
  process.stdout.write(`${JSON.stringify({ event: 'done', ...summary })}\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  },
);
