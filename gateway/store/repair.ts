/**
 * Self-healing storage: a LevelDB that fails to open because it is damaged (a corrupted or truncated table file, a
 * missing manifest) is repaired with LevelDB's own RepairDB, which keeps every record it can read and moves the files
 * it cannot into `lost/` inside the data directory. A torn last write in the log needs no repair: LevelDB drops the
 * incomplete record when it replays the log. A database locked by another process is not damaged and is left alone.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';

export interface RepairReport {
  /** Why the open failed. */
  reason: string;
  /** Files LevelDB could not read and moved aside, with their total size. */
  lostFiles: string[];
  lostBytes: number;
}

/** True for open failures that mean damage (as opposed to a lock held by someone else, or a bad path). */
export function isDamage(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string; message?: string }; message?: string };
  const code = e.cause?.code ?? e.code;
  if (code === 'LEVEL_LOCKED') return false;
  if (code === 'LEVEL_CORRUPTION' || code === 'LEVEL_IO_ERROR') return true;
  const text = `${e.message ?? ''} ${e.cause?.message ?? ''}`;
  return /corrupt|MANIFEST|CURRENT|\.ldb|\.sst|\.log/i.test(text);
}

async function lostFiles(dir: string): Promise<{ files: string[]; bytes: number }> {
  const lost = join(dir, 'lost');
  let names: string[];
  try {
    names = await readdir(lost);
  } catch {
    return { files: [], bytes: 0 };
  }
  let bytes = 0;
  for (const name of names) bytes += (await stat(join(lost, name))).size;
  return { files: names, bytes };
}

/** Runs RepairDB on a closed, damaged database and reports what it moved aside. */
export async function repairStore(dir: string, reason: string): Promise<RepairReport> {
  const before = new Set((await lostFiles(dir)).files);
  await ClassicLevel.repair(dir);
  const after = await lostFiles(dir);
  const files = after.files.filter((f) => !before.has(f));
  let bytes = 0;
  for (const f of files) bytes += (await stat(join(dir, 'lost', f))).size;
  return { reason, lostFiles: files, lostBytes: bytes };
}
