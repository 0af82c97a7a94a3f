import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { onTestFinished } from 'vitest';

/**
 * A fresh directory, removed when the current test finishes. If a LevelDB lives in it, the database must have been
 * closed by then: a database still locked at the end of a test fails the test.
 */
export async function tempDir(prefix = 'sensorgate-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  onTestFinished(async () => {
    try {
      if (existsSync(join(dir, 'LOCK'))) {
        const db = new ClassicLevel(dir, { createIfMissing: false });
        await db.open();
        await db.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  return dir;
}
