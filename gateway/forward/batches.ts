import type { Qos } from '../domain/model.js';
import type { OutboxEntry } from '../ingest/store-port.js';

/** Consecutive backlog entries of one device and one forward QoS, up to `size` per message; order is kept. */
export function batches(
  entries: readonly OutboxEntry[],
  size: number,
  forwardQos: (e: OutboxEntry) => Qos,
): OutboxEntry[][] {
  const out: OutboxEntry[][] = [];
  for (const e of entries) {
    const last = out.at(-1);
    const head = last?.[0];
    if (
      last &&
      head &&
      last.length < size &&
      head.reading.deviceId === e.reading.deviceId &&
      forwardQos(head) === forwardQos(e)
    ) {
      last.push(e);
    } else out.push([e]);
  }
  return out;
}
