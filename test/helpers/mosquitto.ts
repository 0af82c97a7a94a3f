import mqtt, { type MqttClient } from 'mqtt';
import { onTestFinished } from 'vitest';
import { freePort, mosquittoProcess, type MosquittoProcess } from '../../launch/mosquitto-process.js';
import { tempDir } from './temp-dir.js';

export { freePort };
export type Mosquitto = MosquittoProcess;

/** A real Mosquitto from Debian on a free port (or the given one) with persistence on; stopped when the test finishes. */
export async function startMosquitto(opts: { port?: number } = {}): Promise<Mosquitto> {
  const broker = await mosquittoProcess(await tempDir('sensorgate-mosquitto-'), opts.port ?? (await freePort()));
  await broker.start();
  onTestFinished(() => broker.stop());
  return broker;
}

export interface Received {
  topic: string;
  body: Record<string, unknown>;
  qos: number;
}

/** A subscriber on the upstream broker (persistent session, QoS 2), collecting everything the gateway forwards. */
export async function subscribeUpstream(
  url: string,
  filter = 'sensorgate/#',
): Promise<{ client: MqttClient; received: Received[] }> {
  const client = mqtt.connect(url, {
    clientId: `cloud-${Math.random().toString(36).slice(2)}`,
    clean: false,
    reconnectPeriod: 100,
    protocolVersion: 5,
    properties: { sessionExpiryInterval: 3600 },
  });
  onTestFinished(() => client.endAsync(true));
  const received: Received[] = [];
  client.on('message', (topic, payload, packet) => {
    const body = JSON.parse(payload.toString()) as Record<string, unknown> | Record<string, unknown>[];
    for (const b of Array.isArray(body) ? body : [body]) received.push({ topic, body: b, qos: packet.qos });
  });
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  await client.subscribeAsync(filter, { qos: 2 });
  return { client, received };
}
