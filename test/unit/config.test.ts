import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { configSchema, loadConfig } from '../../gateway/config.js';
import { ConfigError } from '../../gateway/domain/errors.js';

describe('config', () => {
  it('fills every default from an empty file, and the shipped gateway.yaml equals the defaults', async () => {
    const defaults = loadConfig({});
    expect(defaults.mqtt).toMatchObject({ host: '127.0.0.1', port: 1883, maxPacketBytes: 262_144 });
    expect(defaults.auth).toMatchObject({ usersFile: null, allowAnonymous: null });
    expect(defaults.http).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(defaults.store.dataDir).toBe('./data');
    const shipped = parse(await readFile('config/gateway.yaml', 'utf8'));
    expect(loadConfig(shipped)).toEqual(defaults);
    expect(Object.keys(shipped).sort()).toEqual(Object.keys(configSchema.parse({})).sort());
  });

  it('reports every problem at once, each with its path, including unknown keys', () => {
    let error: unknown;
    try {
      loadConfig({ mqtt: { port: 70000, hots: 'x' }, store: { maxBatch: 0 }, ingest: { dedupWindow: 12 }, bogus: 1 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues;
    const paths = issues.map((i) => i.path).sort();
    expect(paths).toEqual(['', 'ingest.dedupWindow', 'mqtt', 'mqtt.port', 'store.maxBatch']);
    expect(issues.find((i) => i.path === '')?.message).toMatch(/unknown key\(s\): bogus/);
    expect(issues.find((i) => i.path === 'mqtt')?.message).toMatch(/hots/);
    expect((error as ConfigError).code).toBe('GW_CONFIG_INVALID');
  });

  it('rejects a foreign topic without exactly one {deviceId} level, and clashing ports', () => {
    expect(() => loadConfig({ ingest: { foreign: [{ topic: 'tele/+/SENSOR' }] } })).toThrow(
      /ingest\.foreign\.0\.topic/,
    );
    expect(() => loadConfig({ ingest: { foreign: [{ topic: 'tele/{deviceId}/#' }] } })).toThrow(ConfigError);
    expect(() => loadConfig({ mqtt: { port: 9000 }, http: { port: 9000 } })).toThrow(/http\.port: must differ/);
    expect(loadConfig({ mqtt: { port: 0 }, http: { port: 0 } }).http.port).toBe(0);
  });

  it('refuses a listener beyond loopback without authentication, and says what to configure', () => {
    expect(() => loadConfig({ mqtt: { host: '0.0.0.0' } })).toThrow(
      /mqtt\.host: 0\.0\.0\.0 is not loopback.*auth\.usersFile/,
    );
    expect(() => loadConfig({ http: { host: '192.168.1.5' } })).toThrow(/http\.host: 192\.168\.1\.5 is not loopback/);
    // A users file secures MQTT; the HTTP API beyond loopback still needs tokens or an explicit opening.
    expect(loadConfig({ mqtt: { host: '0.0.0.0' }, auth: { usersFile: 'users' } }).mqtt.host).toBe('0.0.0.0');
    expect(() =>
      loadConfig({ mqtt: { host: '0.0.0.0' }, http: { host: '0.0.0.0' }, auth: { usersFile: 'u' } }),
    ).toThrow(/http\.host/);
    expect(
      loadConfig({ mqtt: { host: '0.0.0.0' }, http: { host: '::' }, auth: { allowAnonymous: true } }).http.host,
    ).toBe('::');
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) {
      expect(loadConfig({ mqtt: { host }, http: { host } }).mqtt.host).toBe(host);
    }
    expect(() => loadConfig({ auth: { allowAnonymous: false } })).toThrow(/auth\.allowAnonymous: false needs/);
    // Every listener counts: a WebSocket listener on the LAN needs users; a TLS one that requires client
    // certificates authenticates by them.
    expect(() => loadConfig({ mqtt: { ws: { host: '0.0.0.0' } } })).toThrow(
      /mqtt\.ws\.host: 0\.0\.0\.0 is not loopback/,
    );
    const tls = { host: '0.0.0.0', cert: 'c', key: 'k', ca: 'ca' };
    expect(() => loadConfig({ mqtt: { tls } })).toThrow(/mqtt\.tls\.host/);
    expect(loadConfig({ mqtt: { tls: { ...tls, clientCerts: 'require' } } }).mqtt.tls?.host).toBe('0.0.0.0');
    expect(() => loadConfig({ auth: { roles: { reader: { subscribe: ['a/#/b'] } } } })).toThrow(
      /auth\.roles\.reader\.subscribe\.0/,
    );
  });

  it('freezes the result', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.ingest.foreign)).toBe(true);
  });
});
