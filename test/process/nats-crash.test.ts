import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { api } from '../helpers/api.js';
import { crashLoop, recorder } from '../helpers/crash-loop.js';
import { laneOrderViolations, natsClient, startNats, streamEntries } from '../helpers/nats.js';
import { startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

const CYCLES = 6;
const PER_CYCLE = 150;

describe('forwarding into JetStream across crashes', () => {
  it('after repeated SIGKILLs mid-forward, the stream has every acked QoS 1 and QoS 2 reading exactly once, in order per lane', async () => {
    const server = await startNats();
    const nc = await natsClient([server.url]);
    const dir = await tempDir();
    const config = join(dir, 'gateway.yaml');
    await writeFile(
      config,
      `gatewayId: crash\nupstream:\n  enabled: true\n  kind: nats\n  url: ${server.url}\n  backoff: { baseMs: 20, capMs: 100, stableMs: 1000 }\n`,
    );
    const dataDir = join(dir, 'data');
    // Every message on the stream's subjects, re-sends the stream drops as duplicates included.
    const { cloud, record } = recorder();
    const sub = nc.subscribe('sensorgate.>', {
      callback: (_err, msg) => record((JSON.parse(new TextDecoder().decode(msg.data)) as { mid: string }).mid),
    });
    const { acked, midForward } = await crashLoop({
      dataDir,
      config,
      cloud,
      cycles: CYCLES,
      perCycle: PER_CYCLE,
      seed: 'nats-crash',
    });

    const final = await startGatewayProcess(dataDir, ['--config', config]);
    const http = `http://127.0.0.1:${final.ready.http.port}`;
    // No device sends now: the restarted gateway must drain its backlog on its own.
    await expect.poll(async () => (await api(http).forwarding()).body.backlog.readings, { timeout: 30_000 }).toBe(0);
    expect(midForward).toBeGreaterThan(0);
    expect(acked[1].size + acked[2].size).toBeGreaterThan(CYCLES * PER_CYCLE);

    const entries = await streamEntries(nc, 'SENSORGATE');
    const counts = new Map<string, number>();
    for (const e of entries) counts.set(e.body.mid, (counts.get(e.body.mid) ?? 0) + 1);
    expect([...acked[1], ...acked[2]].filter((mid) => counts.get(mid) !== 1)).toEqual([]);
    expect([...counts].filter(([, n]) => n > 1)).toEqual([]);
    expect(laneOrderViolations(entries)).toEqual([]);
    // Re-sends after the crashes reached the stream and were recognised, not stored again.
    expect(cloud.mids.length).toBeGreaterThan(entries.length);
    sub.unsubscribe();
    final.child.kill('SIGTERM');
    expect(await final.exited).toBe(0);
  }, 90_000);
});
