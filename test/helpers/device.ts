import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { onTestFinished } from 'vitest';
import { encodeReading, type Encoding, type Reading } from '../../gateway/domain/wire.js';

/** A real MQTT.js client, connected; ended (forced) when the test finishes. */
export async function connectDevice(url: string, clientId: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  onTestFinished(() => client.endAsync(true));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

export function reading(boot: number, seq: number, extra: Partial<Reading> = {}): Reading {
  return { v: 1, boot, seq, ts: 1_700_000_000_000 + seq * 1000, m: { temp_c: 20 + (seq % 10), rh_pct: 50 }, ...extra };
}

export function telemetryTopic(deviceId: string): string {
  return `sensors/${deviceId}/telemetry`;
}

export function payload(r: Reading, encoding: Encoding = 'cbor'): Buffer {
  return encodeReading(r, encoding);
}
