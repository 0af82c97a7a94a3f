import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Cloud, crashLoop, recorder } from '../helpers/crash-loop.js';
import { api } from '../helpers/api.js';
import { startAedesUpstream } from '../helpers/aedes-upstream.js';
import { startMosquitto, subscribeUpstream } from '../helpers/mosquitto.js';
import { startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

const CYCLES = 6;
const PER_CYCLE = 150;

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
      const { acked, midForward } = await crashLoop({
        dataDir,
        config,
        cloud,
        cycles: CYCLES,
        perCycle: PER_CYCLE,
        seed: 'crash-test',
      });

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
