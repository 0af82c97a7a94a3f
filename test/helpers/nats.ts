import { connect, type NatsConnection } from 'nats';
import { onTestFinished } from 'vitest';
import { freePort } from '../../launch/mosquitto-process.js';
import { natsCluster, natsProcess, type NatsProcess, streamMessages } from '../../launch/nats-process.js';
import { tempDir } from './temp-dir.js';

/** A real nats-server with JetStream on a free port; stopped when the test finishes. */
export async function startNats(): Promise<NatsProcess> {
  const node = await natsProcess(await tempDir('sensorgate-nats-'), { port: await freePort(), name: 'n0' });
  await node.start();
  onTestFinished(() => node.stop());
  return node;
}

/** Three JetStream nodes clustered on loopback; stopped when the test finishes. */
export async function startNatsCluster(): Promise<NatsProcess[]> {
  const nodes = await natsCluster(await tempDir('sensorgate-nats-cluster-'), 3);
  onTestFinished(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });
  return nodes;
}

/** A NATS client of the test's, closed when the test finishes. */
export async function natsClient(servers: string[]): Promise<NatsConnection> {
  const nc = await connect({ servers, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  onTestFinished(() => nc.close());
  return nc;
}

export interface StreamEntry {
  subject: string;
  msgId: string | undefined;
  body: { mid: string; deviceId: string; seq: number; qos: number; hist?: boolean };
}

/** Every message of the stream, in stream order. */
export async function streamEntries(nc: NatsConnection, stream: string): Promise<StreamEntry[]> {
  const out: StreamEntry[] = [];
  for await (const m of streamMessages(nc, stream)) {
    out.push({
      subject: m.subject,
      msgId: m.header?.get('Nats-Msg-Id'),
      body: JSON.parse(new TextDecoder().decode(m.data)) as StreamEntry['body'],
    });
  }
  return out;
}

/** Each device's readings in stream order, per lane (live, and hist: sent from the backlog): seqs must rise. */
export function laneOrderViolations(entries: StreamEntry[]): string[] {
  const last = new Map<string, number>();
  const bad: string[] = [];
  for (const e of entries) {
    const lane = `${e.body.deviceId}/${e.body.hist ? 'hist' : 'live'}`;
    if ((last.get(lane) ?? -1) >= e.body.seq) bad.push(`${lane} ${e.body.seq} after ${last.get(lane)}`);
    last.set(lane, e.body.seq);
  }
  return bad;
}
