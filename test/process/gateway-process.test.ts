import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import type { Packet } from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { StoredReading } from '../../gateway/domain/model.js';
import { connectDevice, payload, reading, telemetryTopic } from '../helpers/device.js';
import { api } from '../helpers/api.js';
import { spawnGateway, startGatewayProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

async function allReadings(httpBase: string, id: string): Promise<StoredReading[]> {
  const out: StoredReading[] = [];
  let cursor: string | null = null;
  do {
    const q: string = cursor ? `&cursor=${cursor}` : '';
    const page: { readings: StoredReading[]; next: string | null } = (
      await api(httpBase).readings(id, `?limit=1000${q}`)
    ).body;
    out.push(...page.readings);
    cursor = page.next;
  } while (cursor);
  return out;
}

describe('the gateway process', () => {
  it('shuts down on SIGTERM with exit 0 and leaves the database unlocked', async () => {
    const dir = await tempDir();
    const gw = await startGatewayProcess(dir);
    const dev = await connectDevice(`mqtt://127.0.0.1:${gw.ready.mqtt.port}`, 'term');
    await dev.publishAsync(telemetryTopic('term'), payload(reading(1, 0)), { qos: 1 });
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    const db = new ClassicLevel(dir);
    await db.open();
    await db.close();
  });

  it('keeps every acked QoS 1 reading, exactly once, across a SIGKILL mid-stream', async () => {
    const dir = await tempDir();
    const gw = await startGatewayProcess(dir);
    const dev = await connectDevice(`mqtt://127.0.0.1:${gw.ready.mqtt.port}`, 'killed');
    const acked = new Set<number>();
    const seqOf = new Map<number, number>();
    let killAfter = 400;
    dev.on('packetreceive', (p: Packet) => {
      if (p.cmd !== 'puback') return;
      const seq = seqOf.get(p.messageId as number);
      if (seq !== undefined) acked.add(seq);
      if (acked.size >= killAfter) {
        killAfter = Infinity;
        gw.child.kill('SIGKILL');
      }
    });
    dev.on('packetsend', (p: Packet) => {
      if (p.cmd === 'publish')
        seqOf.set(p.messageId as number, (JSON.parse(p.payload.toString()) as { seq: number }).seq);
    });
    dev.on('error', () => undefined);
    // Keep 20 in flight until the process dies.
    let next = 0;
    const pump = async (): Promise<void> => {
      while (gw.child.exitCode === null && gw.child.signalCode === null && next < 100_000) {
        const seq = next++;
        await dev
          .publishAsync(telemetryTopic('killed'), payload(reading(1, seq), 'json'), { qos: 1 })
          .catch(() => undefined);
      }
    };
    const pumps = Array.from({ length: 20 }, pump);
    expect(await gw.exited).toBe('SIGKILL');
    dev.end(true);
    await Promise.all(pumps);
    expect(acked.size).toBeGreaterThanOrEqual(400);

    const again = await startGatewayProcess(dir);
    const stored = await allReadings(`http://127.0.0.1:${again.ready.http.port}`, 'killed');
    const seqs = stored.map((r) => r.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    const missing = [...acked].filter((s) => !seqs.includes(s));
    expect(missing).toEqual([]);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  });

  it('refuses a bad config with exit 2 and lists every problem', async () => {
    const dir = await tempDir();
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      'mqtt:\n  port: -1\nstore:\n  maxBatch: 0\ningest:\n  topicPrefix: "a/#"\nfrobnicate: true\n',
    );
    const s = spawnGateway(['start', '--config', file]);
    expect(await s.exited).toBe(2);
    const err = s.stderr();
    for (const path of ['mqtt.port', 'store.maxBatch', 'ingest.topicPrefix', 'frobnicate']) expect(err).toContain(path);
  });

  it('reports a bad port flag as a config problem, and check-config prints the effective config', async () => {
    const bad = spawnGateway(['check-config', '--mqtt-port', 'abc']);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toMatch(/mqtt\.port/);
    const ok = spawnGateway(['check-config', '--http-port', '0']);
    let out = '';
    ok.child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    expect(await ok.exited).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ event: 'config-ok', config: { http: { port: 0 }, mqtt: { port: 1883 } } });
  });
});
