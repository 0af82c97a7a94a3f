/** Starts a server process and waits until its stderr log says it is ready. */
import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Resolves with the process once `marker` appears on its stderr; rejects with the log if it exits first. From then on
 * the log is drained and dropped, so that it cannot fill memory or block the server.
 */
export async function spawnLogged(cmd: string[], marker: string): Promise<ChildProcess> {
  const proc = spawn(cmd[0] as string, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const collect = (d: string) => {
    log += d;
  };
  const stderr = proc.stderr?.setEncoding('utf8');
  stderr?.on('data', collect);
  await new Promise<void>((resolve, reject) => {
    const ready = () => {
      if (!log.includes(marker)) return;
      stderr?.off('data', collect).off('data', ready).resume();
      resolve();
    };
    stderr?.on('data', ready);
    proc.once('exit', (code) => reject(new Error(`${cmd.join(' ')} exited (${code}):\n${log}`)));
    proc.once('error', reject);
  });
  return proc;
}
