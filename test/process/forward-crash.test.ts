import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRng } from '../../device-sim/random.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api } from '../helpers/api.js';
import { startAedesUpstream } from '../helpers/aedes-upstream.js';
import { startMosquitto, subscribeUpstream } from '../helpers/mosquitto.js';
import { startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

const CYCLES = 6;
const PER_CYCLE = 150;

/** What reached the upstream broker's subscribers: mids in arrival order, and a way to wait for the next one. */
interface Cloud {
  mids: string[];
  onMessage(listener: () => void): () => void;
}

/** A cloud that records each mid it is handed and tells the listeners. */
function recorder(): { cloud: Cloud; record(mid: string): void } {
  const mids: string[] = [];
  const listeners = new Set<() => void>();
  return {
    cloud: {
      mids,
      onMessage: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    },
    record(mid) {
      mids.push(mid);
      for (const l of listeners) l();
    },
  };
}

async function mosquittoCloud(): Promise<{ url: string; cloud: Cloud }> {
  const broker = await startMosquitto();
  const sub = await subscribeUpstream(broker.url);
  const { cloud, record } = recorder();
  sub.client.on('message', () => {
    const last = sub.received.at(-1);
    if (last) record(last.body.mid as string);
  });
  return { url: broker.url, cloud };
}

/** Aedes routes a QoS 2 message on PUBLISH, before PUBREC, so a resent PUBLISH it does not recognise shows up twice. */
async function aedesCloud(): Promise<{ url: string; cloud: Cloud }> {
  const upstream = await startAedesUpstream();
  const { cloud, record } = recorder();
  upstream.aedes.on('publish', (packet, client) => {
    if (!client?.id.startsWith('sensorgate-')) return;
    record((JSON.parse(packet.payload.toString()) as { mid: string }).mid);
  });
  return { url: upstream.url, cloud };
}

describe('forwarding across crashes', () => {
  it.each([
    ['Mosquitto', mosquittoCloud],
    ['Aedes', aedesCloud],
  ] as const)(
    'after repeated SIGKILLs mid-forward to %s, upstream has every acked QoS 1 reading at least once and every QoS 2 reading exactly once',
    async (_name, startCloud) => {
      const { url: upstreamUrl, cloud } = await startCloud();
      const dir = await tempDir();
      const config = join(dir, 'gateway.yaml');
      await writeFile(
        config,
        `gatewayId: crash\nupstream:\n  enabled: true\n  url: ${upstreamUrl}\n  backoff: { baseMs: 20, capMs: 100, stableMs: 1000 }\n`,
      );
      const dataDir = join(dir, 'data');
      const rng = createRng('crash-test');
      const acked = { 1: new Set<string>(), 2: new Set<string>() };
      /** Cycles whose SIGKILL came while acked readings were still on their way upstream. */
      let midForward = 0;

      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const gw = await startGatewayProcess(dataDir, ['--config', config]);
        const url = `mqtt://127.0.0.1:${gw.ready.mqtt.port}`;
        const devices = { 1: await connectDevice(url, 'crash-q1'), 2: await connectDevice(url, 'crash-q2') };
        // Fewer than the cycle's own readings, so the threshold is reached while this cycle is still forwarding.
        const killAt = cloud.mids.length + 20 + Math.floor(rng.next() * (PER_CYCLE * 2 - 40));
        const killed = new Promise<void>((resolve) => {
          const stop = cloud.onMessage(() => {
            if (cloud.mids.length < killAt) return;
            stop();
            gw.child.kill('SIGKILL');
            const upstream = new Set(cloud.mids);
            if ([...acked[1], ...acked[2]].some((mid) => !upstream.has(mid))) midForward++;
            resolve();
          });
          void gw.exited.then(() => {
            stop();
            resolve();
          });
        });
        const sends = ([1, 2] as const).flatMap((qos) =>
          Array.from({ length: PER_CYCLE }, (_, i) => {
            const seq = cycle * PER_CYCLE + i;
            const id = qos === 1 ? 'crash-q1' : 'crash-q2';
            return devices[qos]
              .publishAsync(telemetryTopic(id), payload(reading(1, seq)), { qos })
              .then(() => acked[qos].add(`${id}:1:${seq}`))
              .catch(() => undefined);
          }),
        );
        await killed;
        await gw.exited;
        await Promise.all([devices[1].endAsync(true), devices[2].endAsync(true)]);
        await Promise.all(sends);
      }

      const final = await startGatewayProcess(dataDir, ['--config', config]);
      const http = `http://127.0.0.1:${final.ready.http.port}`;
      await expect
        .poll(async () => (await api(http).forwarding()).body.backlog.readings, {
          timeout: 30_000,
        })
        .toBe(0);
      const ackedCount = acked[1].size + acked[2].size;
      expect(ackedCount).toBeGreaterThan(CYCLES * PER_CYCLE);
      expect(midForward).toBeGreaterThan(0);

      const counts = new Map<string, number>();
      const waitAll = () => [...acked[1], ...acked[2]].every((mid) => (counts.get(mid) ?? 0) > 0);
      await expect
        .poll(
          () => {
            counts.clear();
            for (const mid of cloud.mids) counts.set(mid, (counts.get(mid) ?? 0) + 1);
            return waitAll();
          },
          { timeout: 15_000 },
        )
        .toBe(true);
      const q2Dups = [...counts].filter(([mid, n]) => mid.startsWith('crash-q2') && n > 1);
      expect(q2Dups).toEqual([]);
      const missing = [...acked[1], ...acked[2]].filter((mid) => !counts.has(mid));
      expect(missing).toEqual([]);
      final.child.kill('SIGTERM');
      expect(await final.exited).toBe(0);
    },
  );
});
