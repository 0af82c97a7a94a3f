import { createRng } from '../../device-sim/random.js';
import { connectDevice, payload, reading, telemetryTopic } from './device.js';
import { startGatewayProcess } from './process.js';

/** What reached the upstream: mids in arrival order (re-sends included), and a way to hear of the next one. */
export interface Cloud {
  mids: string[];
  onMessage(listener: () => void): () => void;
}

/** A cloud that records each mid it is handed and tells the listeners. */
export function recorder(): { cloud: Cloud; record(mid: string): void } {
  const mids: string[] = [];
  const listeners = new Set<() => void>();
  return {
    cloud: {
      mids,
      onMessage: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    },
    record(mid) {
      mids.push(mid);
      for (const l of listeners) l();
    },
  };
}

export interface CrashLoopResult {
  /** Readings whose PUBACK (QoS 1) or PUBCOMP (QoS 2) reached the device, by QoS. */
  acked: { 1: Set<string>; 2: Set<string> };
  /** Cycles whose SIGKILL came while acked readings were still on their way upstream. */
  midForward: number;
}

/**
 * Runs the gateway process `cycles` times on one data dir; each time two devices (crash-q1 at QoS 1, crash-q2 at
 * QoS 2) send `perCycle` readings each, and the gateway is SIGKILLed once the cloud has seen a random number more.
 */
export async function crashLoop(opts: {
  dataDir: string;
  config: string;
  cloud: Cloud;
  cycles: number;
  perCycle: number;
  seed: string;
}): Promise<CrashLoopResult> {
  const { cloud, perCycle } = opts;
  const rng = createRng(opts.seed);
  const acked = { 1: new Set<string>(), 2: new Set<string>() };
  let midForward = 0;
  for (let cycle = 0; cycle < opts.cycles; cycle++) {
    const gw = await startGatewayProcess(opts.dataDir, ['--config', opts.config]);
    const url = `mqtt://127.0.0.1:${gw.ready.mqtt.port}`;
    const devices = { 1: await connectDevice(url, 'crash-q1'), 2: await connectDevice(url, 'crash-q2') };
    // Fewer than the cycle's own readings, so the threshold is reached while this cycle is still forwarding.
    const killAt = cloud.mids.length + 20 + Math.floor(rng.next() * (perCycle * 2 - 40));
    const killed = new Promise<void>((resolve) => {
      const stop = cloud.onMessage(() => {
        if (cloud.mids.length < killAt) return;
        stop();
        gw.child.kill('SIGKILL');
        const upstream = new Set(cloud.mids);
        if ([...acked[1], ...acked[2]].some((mid) => !upstream.has(mid))) midForward++;
        resolve();
      });
      void gw.exited.then(() => {
        stop();
        resolve();
      });
    });
    const sends = ([1, 2] as const).flatMap((qos) =>
      Array.from({ length: perCycle }, (_, i) => {
        const seq = cycle * perCycle + i;
        const id = qos === 1 ? 'crash-q1' : 'crash-q2';
        return devices[qos]
          .publishAsync(telemetryTopic(id), payload(reading(1, seq)), { qos })
          .then(() => acked[qos].add(`${id}:1:${seq}`))
          .catch(() => undefined);
      }),
    );
    await killed;
    await gw.exited;
    await Promise.all([devices[1].endAsync(true), devices[2].endAsync(true)]);
    await Promise.all(sends);
  }
  return { acked, midForward };
}
