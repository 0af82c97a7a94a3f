/** Progress output: one line rewritten in place on a terminal, plain periodic lines otherwise (both on stderr). */
import type { Progress } from './simulator.js';

export function formatProgress(p: Progress): string {
  const t = p.totals;
  return [
    `${(p.elapsedMs / 1000).toFixed(0)}s${p.draining ? ' draining' : ''}`,
    `devices ${p.connected}/${p.devices}`,
    `${p.rate.toFixed(0)} readings/s`,
    `sent ${t.sent}`,
    `acked ${t.acked}`,
    `in flight ${t.inFlight}`,
    `buffered ${t.buffered}`,
    `dropped ${t.dropped}`,
    `faults: resets ${p.proxy.resets} stalls ${p.proxy.stalls} reboots ${t.reboots} dup re-sends ${t.resent}`,
  ].join(' · ');
}

export function createProgressPrinter(
  stream: NodeJS.WriteStream,
  plainEveryMs = 5000,
): { update(p: Progress): void; done(): void } {
  const tty = stream.isTTY === true;
  let lastPlain = -Infinity;
  return {
    update(p) {
      if (tty) {
        stream.write(`\r\x1b[2K${formatProgress(p)}`);
      } else if (p.elapsedMs - lastPlain >= plainEveryMs) {
        lastPlain = p.elapsedMs;
        stream.write(`${formatProgress(p)}\n`);
      }
    },
    done() {
      if (tty) stream.write('\n');
    },
  };
}
