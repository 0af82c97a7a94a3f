#!/usr/bin/env node
/**
 * Process entry: the only file that reads argv and the environment or calls process.exit.
 *
 * Precedence: command-line flags > environment (SENSORGATE_*) > config file > schema defaults.
 * Exit codes: 0 clean shutdown, 1 runtime failure or forced shutdown, 2 bad command line or config.
 */
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import closeWithGrace from 'close-with-grace';
import { addUser, listUsers, removeUser } from './auth/passwd.js';
import { addToken, readTokensFile, removeToken } from './auth/tokens-file.js';
import { loadConfig, readConfigFile, type FrozenConfig } from './config.js';
import { ConfigError, GatewayError } from './domain/errors.js';
import { createGateway } from './gateway.js';
import { createLogger } from './shared/log.js';
import { restoreBackup, writeBackup } from './store/backup.js';

const DEFAULT_CONFIG = 'config/gateway.yaml';

const USAGE = `usage:
  gateway start [--config FILE] [--data-dir DIR] [--host HOST] [--mqtt-port N] [--http-port N]
  gateway check-config [--config FILE]
  gateway backup DIR [--config FILE] [--http-port N]     (a consistent copy of the running gateway's store into DIR)
  gateway restore DIR [--config FILE] [--data-dir DIR]   (gateway stopped; the data dir must be empty or absent)
  gateway export [--from MS] [--to MS] [--format csv|ndjson] [--config FILE] [--http-port N]
                  (from the running gateway's HTTP API; a token in env SENSORGATE_API_TOKEN)
  gateway passwd add NAME --role device|reader|admin [--users FILE]   (password: first line of stdin)
  gateway passwd remove NAME [--users FILE]
  gateway passwd list [--users FILE]
  gateway token add NAME --scope read|admin [--tokens FILE]   (prints the token, once)
  gateway token remove NAME [--tokens FILE]
  gateway token list [--tokens FILE]

  --config FILE   YAML config (default ${DEFAULT_CONFIG}; env SENSORGATE_CONFIG)
  --data-dir DIR  LevelDB data directory (default ./data; env SENSORGATE_DATA_DIR)
  --host HOST     bind address of the MQTT and HTTP listeners (default 127.0.0.1; env SENSORGATE_HOST)
  --mqtt-port N   MQTT port, 0 = any free port (default 1883; env SENSORGATE_MQTT_PORT)
  --http-port N   HTTP port, 0 = any free port (default 8080; env SENSORGATE_HTTP_PORT)
  --users FILE    the users file for passwd (default: auth.usersFile of the config)
  --tokens FILE   the HTTP API tokens file for token (default: auth.tokensFile of the config)
  env SENSORGATE_LOG_LEVEL sets log.level, SENSORGATE_GATEWAY_ID sets gatewayId, SENSORGATE_UPSTREAM_PASSWORD sets
  upstream.password (or upstream.passwordFile names a file holding it).
  SIGHUP re-reads the users and tokens files; SIGTERM and SIGINT shut down.`;

type Raw = Record<string, unknown>;

function section(raw: Raw, key: string): Raw {
  const existing = raw[key];
  if (existing !== null && typeof existing === 'object' && !Array.isArray(existing)) return existing as Raw;
  if (existing !== undefined) return {}; // leave the bad value for the schema to report
  const created: Raw = {};
  raw[key] = created;
  return created;
}

/** A numeric override that is not a number stays a string, so the schema reports it with its path. */
const num = (s: string): number | string => (/^\d+$/.test(s) ? Number(s) : s);

function applyOverrides(
  file: unknown,
  o: {
    dataDir?: string | undefined;
    host?: string | undefined;
    mqttPort?: string | undefined;
    httpPort?: string | undefined;
    logLevel?: string | undefined;
    gatewayId?: string | undefined;
    upstreamPassword?: string | undefined;
  },
): unknown {
  if (file === null || typeof file !== 'object' || Array.isArray(file)) return file;
  const raw = structuredClone(file) as Raw;
  if (o.gatewayId !== undefined) raw.gatewayId = o.gatewayId;
  if (o.dataDir !== undefined) section(raw, 'store').dataDir = o.dataDir;
  if (o.host !== undefined) {
    section(raw, 'mqtt').host = o.host;
    section(raw, 'http').host = o.host;
  }
  if (o.mqttPort !== undefined) section(raw, 'mqtt').port = num(o.mqttPort);
  if (o.httpPort !== undefined) section(raw, 'http').port = num(o.httpPort);
  if (o.logLevel !== undefined) section(raw, 'log').level = o.logLevel;
  if (o.upstreamPassword !== undefined) section(raw, 'upstream').password = o.upstreamPassword;
  return raw;
}

/** `upstream.passwordFile`: the password comes from that file (its first line), so the config file holds no secret. */
async function readPasswordFile(raw: unknown): Promise<unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const upstream = (raw as Raw).upstream as Raw | undefined;
  const file = upstream?.passwordFile;
  if (!upstream || typeof file !== 'string') return raw;
  if (upstream.password != null) {
    throw new ConfigError([{ path: 'upstream.password', message: 'set either password or passwordFile' }], 'config');
  }
  try {
    upstream.password = (await readFile(file, 'utf8')).split(/\r?\n/)[0] ?? '';
  } catch (err) {
    throw new ConfigError([{ path: 'upstream.passwordFile', message: (err as Error).message }], 'config');
  }
  return raw;
}

/** The effective config with its secrets replaced, for check-config. */
function redacted(config: FrozenConfig): unknown {
  const copy = structuredClone(config) as { upstream: { password: string | null } };
  if (copy.upstream.password !== null) copy.upstream.password = '(redacted)';
  return copy;
}

/** `source`: the config file read (absolute), or null when the default path does not exist and the defaults apply. */
async function resolveConfig(argv: string[]): Promise<{
  command: string;
  config: FrozenConfig;
  source: string | null;
  exportQuery: URLSearchParams;
  dir: string;
}> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      host: { type: 'string' },
      'mqtt-port': { type: 'string' },
      'http-port': { type: 'string' },
      users: { type: 'string' },
      role: { type: 'string' },
      tokens: { type: 'string' },
      scope: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      format: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0] ?? 'start';
  const known =
    command === 'passwd' ||
    command === 'token' ||
    (positionals.length <= 1 && ['start', 'check-config', 'export'].includes(command)) ||
    (positionals.length === 2 && ['backup', 'restore'].includes(command));
  if (values.help || !known) {
    throw new UsageError(values.help ? '' : `unknown command: ${positionals.join(' ')}`);
  }
  const env = process.env;
  const explicit = values.config ?? env.SENSORGATE_CONFIG;
  const path = explicit ?? DEFAULT_CONFIG;
  const file = await readConfigFile(path, explicit === undefined);
  const raw = applyOverrides(file.raw, {
    dataDir: values['data-dir'] ?? env.SENSORGATE_DATA_DIR,
    host: values.host ?? env.SENSORGATE_HOST,
    mqttPort: values['mqtt-port'] ?? env.SENSORGATE_MQTT_PORT,
    httpPort: values['http-port'] ?? env.SENSORGATE_HTTP_PORT,
    logLevel: env.SENSORGATE_LOG_LEVEL,
    gatewayId: env.SENSORGATE_GATEWAY_ID,
    upstreamPassword: env.SENSORGATE_UPSTREAM_PASSWORD,
  });
  const config = loadConfig(await readPasswordFile(raw), path);
  if (command === 'passwd') await passwd(positionals.slice(1), values.users ?? config.auth.usersFile, values.role);
  if (command === 'token') await token(positionals.slice(1), values.tokens ?? config.auth.tokensFile, values.scope);
  const exportQuery = new URLSearchParams({
    ...(values.from ? { from: values.from } : {}),
    ...(values.to ? { to: values.to } : {}),
    format: values.format ?? 'csv',
  });
  return { command, config, source: file.found ? resolve(path) : null, exportQuery, dir: positionals[1] ?? '' };
}

/** `passwd` and `token`: list, remove NAME, add NAME with its role or scope; exits with the result. */
async function editFile(
  args: string[],
  o: {
    what: string;
    file: string | null;
    list(file: string): Promise<{ name: string; kind: string }[]>;
    remove(file: string, name: string): Promise<boolean>;
    add(file: string, name: string): Promise<void>;
    canAdd: boolean;
  },
): Promise<never> {
  const [action, name] = args;
  if (o.file === null) throw new UsageError(`${o.what} needs its file: a flag or the config's auth section`);
  if (action === 'list' && name === undefined) {
    for (const e of await o.list(o.file)) process.stdout.write(`${e.name}\t${e.kind}\n`);
    process.exit(0);
  }
  if (action === 'remove' && name !== undefined && args.length === 2) {
    const removed = await o.remove(o.file, name);
    process.stderr.write(removed ? `removed ${name}\n` : `no ${o.what} entry ${name}\n`);
    process.exit(removed ? 0 : 1);
  }
  if (action === 'add' && name !== undefined && args.length === 2 && o.canAdd) {
    await o.add(o.file, name);
    process.stderr.write(`${name} written to ${o.file}; SIGHUP makes a running gateway read it\n`);
    process.exit(0);
  }
  throw new UsageError(`bad ${o.what} arguments: ${args.join(' ')}`);
}

function token(args: string[], file: string | null, scope: string | undefined): Promise<never> {
  return editFile(args, {
    what: 'token',
    file,
    list: async (f) => (await readTokensFile(f)).map((t) => ({ name: t.name, kind: t.scope })),
    remove: removeToken,
    // The token itself goes to stdout, once; only its hash is kept.
    add: async (f, name) => void process.stdout.write(`${await addToken(f, name, scope ?? '')}\n`),
    canAdd: scope !== undefined,
  });
}

/** The password: the first line of stdin, so that it never shows in the process list or the shell history. */
async function readPassword(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('password (one line; input is echoed, or pipe it in): ');
  const lines = createInterface({ input: process.stdin, terminal: false });
  for await (const line of lines) {
    lines.close();
    return line;
  }
  return '';
}

function passwd(args: string[], file: string | null, role: string | undefined): Promise<never> {
  return editFile(args, {
    what: 'passwd',
    file,
    list: async (f) => (await listUsers(f)).map((u) => ({ name: u.name, kind: u.role })),
    remove: removeUser,
    add: async (f, name) => addUser(f, name, role ?? '', await readPassword()),
    canAdd: role !== undefined,
  });
}

class UsageError extends Error {}

function apiUrl(config: FrozenConfig, path: string): string {
  const host = ['0.0.0.0', '::'].includes(config.http.host) ? '127.0.0.1' : config.http.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}${path}`;
}

/** `gateway backup DIR`: the running gateway (which holds the store's lock) streams one snapshot of its store. */
async function backup(config: FrozenConfig, dir: string): Promise<void> {
  const res = await getFromGateway(apiUrl(config, '/api/v1/backup'));
  const records = await writeBackup(dir, Readable.fromWeb(res.body as never));
  process.stderr.write(`backup of ${records} records written to ${dir}\n`);
}

/** `gateway restore DIR`: with the gateway stopped, copies a backup into an empty data directory. */
async function restore(config: FrozenConfig, dir: string): Promise<void> {
  const dataDir = resolve(config.store.dataDir);
  await restoreBackup(dir, dataDir);
  process.stderr.write(`restored ${dir} into ${dataDir}\n`);
}

async function getFromGateway(url: string): Promise<Response> {
  const token = process.env.SENSORGATE_API_TOKEN;
  let res: Response;
  try {
    res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  } catch (err) {
    process.stderr.write(`cannot reach the gateway at ${url}: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (!res.ok || !res.body) {
    process.stderr.write(`${url} failed: ${res.status} ${await res.text()}\n`);
    process.exit(res.status === 400 ? 2 : 1);
  }
  return res;
}

/** `gateway export`: the readings of a time range from the running gateway, streamed to stdout as they arrive. */
async function exportReadings(config: FrozenConfig, query: URLSearchParams): Promise<void> {
  const res = await getFromGateway(apiUrl(config, `/api/v1/readings?${query}`));
  await pipeline(Readable.fromWeb(res.body as never), process.stdout);
}

async function main(): Promise<void> {
  let resolved: Awaited<ReturnType<typeof resolveConfig>>;
  try {
    resolved = await resolveConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      const message = (err as Error).message;
      if (message) process.stderr.write(`${message}\n`);
      process.stderr.write(`${USAGE}\n`);
      process.exit(err instanceof UsageError && !err.message ? 0 : 2);
    }
    const userError = ['GW_CONFIG_UNREADABLE', 'GW_AUTH_USERS_INVALID'];
    if (err instanceof ConfigError || (err instanceof GatewayError && userError.includes(err.code))) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const { command, config, source, exportQuery, dir } = resolved;
  if (command === 'check-config') {
    process.stdout.write(`${JSON.stringify({ event: 'config-ok', config: redacted(config) })}\n`);
    return;
  }
  if (command === 'export') return exportReadings(config, exportQuery);
  if (command === 'backup' || command === 'restore') {
    try {
      return await (command === 'backup' ? backup(config, dir) : restore(config, dir));
    } catch (err) {
      // A target that is not empty, or a directory that is no backup: the user's to fix, like a bad config.
      if (!(err instanceof GatewayError && ['GW_BACKUP_TARGET_NOT_EMPTY', 'GW_BACKUP_INVALID'].includes(err.code))) {
        throw err;
      }
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
  }

  const log = createLogger(config.log.level);
  log.info(
    { config: source, dataDir: resolve(config.store.dataDir) },
    source ? `config ${source}` : `no config file at ${DEFAULT_CONFIG}: running on the defaults`,
  );
  const gateway = createGateway(config, { log });
  closeWithGrace(
    {
      delay: config.shutdown.timeoutMs,
      // SIGHUP re-reads the users file (below), as Mosquitto does; it does not stop the gateway.
      skip: ['SIGHUP'],
      logger: { error: (m: unknown) => log.error(m instanceof Error ? { err: m } : { msg: String(m) }, 'shutdown') },
    },
    async ({ signal, err }) => {
      if (err) log.fatal({ err }, 'unexpected error, shutting down');
      else log.info({ signal }, 'signal received, shutting down');
      await gateway.close();
    },
  );
  process.on('SIGHUP', () => {
    // SIGHUP re-reads only the users and tokens files; every other setting needs a restart.
    log.info('SIGHUP: re-reading the users and tokens files');
    gateway.reload().catch((err: unknown) => log.error({ err }, 'reload failed'));
  });
  try {
    const addresses = await gateway.start();
    process.stdout.write(`${JSON.stringify({ event: 'ready', ...addresses })}\n`);
  } catch (err) {
    log.fatal({ err }, 'start failed');
    process.exit(1);
  }
}

await main();
