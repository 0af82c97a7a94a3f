/** What /proc says about a process, for the benchmarks: its resident memory and the bytes it made the disk write. */
import { readFile } from 'node:fs/promises';

export const rssMb = async (pid: number): Promise<number> =>
  Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

/** `write_bytes` of /proc/PID/io: pages the process dirtied (a rewrite of a page after an fsync counts again). */
export const writtenBytes = async (pid: number): Promise<number> =>
  Number(/write_bytes: (\d+)/.exec(await readFile(`/proc/${pid}/io`, 'utf8'))?.[1] ?? 0);
