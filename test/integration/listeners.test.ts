import { readFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { api, readingsOf } from '../helpers/api.js';
import { makeCerts } from '../helpers/certs.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { startTestGateway } from '../helpers/gateway.js';

/** What a real MQTT.js client gets: 'connected', a CONNACK return code, or the error of a failed TLS handshake. */
async function tryConnect(url: string, opts: mqtt.IClientOptions): Promise<string> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  onTestFinished(() => client.endAsync(true));
  return new Promise((resolve) => {
    client.once('connect', () => resolve('connected'));
    client.once('error', (err) => resolve(`error ${(err as { code?: number | string }).code ?? err.message}`));
    client.once('close', () => resolve('closed'));
  });
}

describe('listeners', () => {
  it('takes a device over TLS with its certificate as identity, and refuses one without a certificate from the CA', async () => {
    const certs = await makeCerts(['st-1']);
    const gw = await startTestGateway({
      config: {
        mqtt: {
          tls: { port: 0, cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, clientCerts: 'require' },
        },
      },
    });
    const port = gw.addresses.mqtts?.port;
    const url = `mqtts://127.0.0.1:${port}`;
    const ca = await readFile(certs.ca);
    const tlsOf = async (pair: { cert: string; key: string }) => ({
      ca,
      cert: await readFile(pair.cert),
      key: await readFile(pair.key),
    });
    const dev = await connectDevice(url, 'st-1', await tlsOf(certs.client['st-1']!));
    await dev.publishAsync(telemetryTopic('st-1'), payload(reading(1, 1)), { qos: 1 });
    expect((await readingsOf(gw.httpUrl, 'st-1')).map((r) => r.seq)).toEqual([1]);
    // The certificate names the device: another client id, or another device's topic, is refused.
    expect(await tryConnect(url, { clientId: 'st-9', ...(await tlsOf(certs.client['st-1']!)) })).toBe('error 2');
    expect(await tryConnect(url, { clientId: 'st-1', ca })).toMatch(/^(error|closed)/);
    expect(await tryConnect(url, { clientId: 'stranger', ...(await tlsOf(certs.stranger)) })).toMatch(
      /^(error|closed)/,
    );
    expect((await api(gw.httpUrl).devices()).body.devices.map((d) => d.id)).toEqual(['st-1']);
  });

  it('takes MQTT over WebSocket (ws and wss) on /mqtt, bounded by the packet size', async () => {
    const certs = await makeCerts([]);
    const gw = await startTestGateway({ config: { mqtt: { ws: { port: 0 }, maxPacketBytes: 4096 } } });
    const ws = `ws://127.0.0.1:${gw.addresses.ws?.port}/mqtt`;
    const browser = await connectDevice(ws, 'dashboard');
    await browser.subscribeAsync('sensors/#', { qos: 1 });
    const got = new Promise<string>((resolve) => browser.once('message', (topic) => resolve(topic)));
    const dev = await connectDevice(ws, 'ws-dev');
    await dev.publishAsync(telemetryTopic('ws-dev'), payload(reading(1, 1)), { qos: 1 });
    expect(await got).toBe(telemetryTopic('ws-dev'));
    expect(await tryConnect(`ws://127.0.0.1:${gw.addresses.ws?.port}/other`, { clientId: 'x' })).toMatch(
      /^(error|closed)/,
    );
    const big = await connectDevice(ws, 'big');
    const closed = new Promise<void>((resolve) => big.once('close', () => resolve()));
    big.publish('lab/blob', Buffer.alloc(10_000, 1), { qos: 0 });
    await closed;

    const secure = await startTestGateway({
      config: { mqtt: { ws: { port: 0, tls: { cert: certs.serverCert, key: certs.serverKey } } } },
    });
    const wss = `wss://127.0.0.1:${secure.addresses.ws?.port}/mqtt`;
    const overTls = await connectDevice(wss, 'wss-dev', { ca: await readFile(certs.ca) });
    await overTls.publishAsync(telemetryTopic('wss-dev'), payload(reading(1, 1)), { qos: 1 });
  });
});
