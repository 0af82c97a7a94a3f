import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { builtScript } from '../helpers/built.js';

describe('bench smoke run', () => {
  it('ingest-path prints one row per stage with a rate and a CPU cost', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      builtScript('dist/bench/ingest-path.js'),
      '--readings',
      '3000',
      '--devices',
      '5',
      '--burst',
      '10',
    ]);
    const rows = stdout
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| stage'))
      .map((l) => l.split('|').map((c) => c.trim()));
    expect(rows.map((r) => r[1])).toEqual([
      'decode (cbor-x)',
      'decode + validate (zod)',
      'decode + validate + dedup',
      'ingest, storage a no-op',
      'ingest + LevelDB, no fsync',
      'ingest + LevelDB, synced (the default)',
      'raw payloads in LevelDB sync batches only',
    ]);
    for (const r of rows) {
      expect(Number(r[2])).toBeGreaterThan(0);
      expect(Number(r[3])).toBeGreaterThan(0);
    }
  });
});
