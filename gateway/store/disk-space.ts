/**
 * Watches the free space of the filesystem holding the data directory. Below the reserve the gateway stops acking
 * QoS 1/2 readings (the devices keep them) rather than let LevelDB run into ENOSPC: LevelDB treats a failed log write
 * as fatal for the open database, so avoiding it is what lets the gateway recover on its own when space returns.
 * Polled on a timer, never per message.
 */
import { statfs } from 'node:fs/promises';
import type { Logger } from '../shared/log.js';

export interface DiskSpace {
  /** Bytes available to the gateway at the last check. */
  readonly freeBytes: number;
  /** True while free space is below the reserve. */
  readonly full: boolean;
  close(): void;
}

export async function watchDiskSpace(
  dir: string,
  reserveBytes: number,
  intervalMs: number,
  log: Logger,
): Promise<DiskSpace> {
  let freeBytes = Infinity;
  let full = false;
  const check = async () => {
    try {
      const s = await statfs(dir);
      freeBytes = s.bavail * s.bsize;
    } catch (err) {
      log.warn({ err, dir }, 'cannot read free disk space');
      return;
    }
    const nowFull = freeBytes < reserveBytes;
    if (nowFull !== full) {
      full = nowFull;
      if (full)
        log.error({ freeBytes, reserveBytes }, 'disk nearly full: QoS 1/2 readings are not acked until space returns');
      else log.info({ freeBytes }, 'disk space back above the reserve: acking QoS 1/2 readings');
    }
  };
  await check();
  const timer = setInterval(() => void check(), intervalMs);
  timer.unref();
  return {
    get freeBytes() {
      return freeBytes;
    },
    get full() {
      return full;
    },
    close() {
      clearInterval(timer);
    },
  };
}
