/**
 * Backup and restore of a store (docs/operations.md, "Export, backup and restore"): a backup is a LevelDB of its own,
 * written from the backup stream of a running gateway; a restore checks it and copies it into an empty data dir.
 */
import { cp, readdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { ClassicLevel } from 'classic-level';
import { GatewayError } from '../domain/errors.js';
import { decodeBackupLine } from '../shared/backup-format.js';

const openDb = (dir: string) =>
  new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });

/** A backup or a restore never mixes with what is there: the target must not exist or be empty. */
async function assertEmptyDir(dir: string, what: string): Promise<void> {
  const entries = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (entries.length > 0) throw new GatewayError('GW_BACKUP_TARGET_NOT_EMPTY', `${what} ${dir} is not empty`);
}

/** Writes a backup stream into a new LevelDB at `dir`; resolves with the number of records. */
export async function writeBackup(dir: string, stream: Readable): Promise<number> {
  await assertEmptyDir(dir, 'backup directory');
  const db = openDb(dir);
  await db.open();
  try {
    let batch = db.batch();
    let records = 0;
    // Made right before the loop: readline starts reading at once, and lines it emits before the loop are lost.
    for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
      if (line === '') continue;
      const [key, value] = decodeBackupLine(line);
      batch.put(key, value);
      if (++records % 1000 === 0) {
        await batch.write();
        batch = db.batch();
      }
    }
    await batch.write({ sync: true });
    return records;
  } finally {
    await db.close();
  }
}

/** Checks that `backupDir` is a sensorgate store, then copies it into the empty `dataDir`. */
export async function restoreBackup(backupDir: string, dataDir: string): Promise<void> {
  await assertEmptyDir(dataDir, 'data directory');
  const db = openDb(backupDir);
  await db.open();
  const schema = await db.get('!meta!schema');
  await db.close();
  if (schema === undefined) {
    throw new GatewayError('GW_BACKUP_INVALID', `${backupDir} is not a sensorgate backup (no schema record)`);
  }
  await cp(backupDir, dataDir, { recursive: true, filter: (src) => !src.endsWith('/LOCK') });
}
