/** The users and tokens files are written whole, atomically, readable by their owner only. */
import { chmod, rename, writeFile } from 'node:fs/promises';

/** Replaces `path` with `text` by a rename, so that a half-written file is never read. */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  // The mode of writeFile applies only to a file it creates; an old temp file keeps its own.
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
