import { describe, expect, it } from 'vitest';
import type { StoredReading } from '../../gateway/domain/model.js';
import { AckRate } from '../../gateway/forward/ack-rate.js';
import { batches } from '../../gateway/forward/batches.js';
import { InFlight } from '../../gateway/forward/in-flight.js';
import { Lanes } from '../../gateway/forward/lanes.js';
import { Pacer } from '../../gateway/forward/pacer.js';
import { Serial } from '../../gateway/forward/serial.js';
import type { OutboxEntry } from '../../gateway/ingest/store-port.js';

function entry(gseq: number, deviceId: string, qos: 0 | 1 | 2 = 1): OutboxEntry {
  const reading: StoredReading = { deviceId, boot: 1, seq: gseq, ts: gseq, rx: gseq, qos, m: { temp_c: 1 } };
  return { gseq, reading, bytes: 10 };
}

describe('lanes', () => {
  it('makes what was committed before a connect the backlog, and what comes after it live', () => {
    const lanes = new Lanes(10);
    lanes.committed(11);
    lanes.committed(12);
    expect([lanes.liveCursor, lanes.backlogCursor, lanes.boundary, lanes.backlogLeft]).toEqual([10, 0, 10, true]);
    lanes.reconnected();
    expect([lanes.liveCursor, lanes.boundary]).toEqual([12, 12]);
    lanes.committed(13);
    lanes.sentLive(13);
    lanes.sentBacklog(5);
    expect([lanes.liveCursor, lanes.backlogCursor]).toEqual([13, 5]);
    lanes.backlogDrained();
    expect(lanes.backlogLeft).toBe(false);
  });

  it('rewinds the lane an unsent entry came from, and only that one', () => {
    const lanes = new Lanes(0);
    for (let g = 1; g <= 20; g++) lanes.committed(g);
    lanes.reconnected();
    lanes.sentBacklog(8);
    for (let g = 21; g <= 25; g++) lanes.committed(g);
    lanes.sentLive(25);
    lanes.rewind(6);
    expect([lanes.backlogCursor, lanes.liveCursor]).toEqual([5, 25]);
    lanes.rewind(23);
    expect([lanes.backlogCursor, lanes.liveCursor]).toEqual([5, 22]);
  });
});

describe('pacer', () => {
  it('lets `rate` entries a second through, bursts capped at one second', () => {
    let t = 0;
    const pacer = new Pacer(100, () => t);
    expect(pacer.available()).toBe(0);
    t = 250;
    expect(pacer.available()).toBe(25);
    pacer.take(25);
    t = 10_000;
    expect(pacer.available()).toBe(100);
    expect(pacer.retryMs).toBe(10);
  });
});

describe('ack rate', () => {
  it('averages over the window and forgets older seconds', () => {
    const rate = new AckRate(10);
    rate.count(50, 1_000);
    rate.count(50, 1_500);
    rate.count(100, 5_000);
    expect(rate.perSecond(5_000)).toBe(20);
    expect(rate.perSecond(11_999)).toBe(10);
    expect(rate.perSecond(16_000)).toBe(0);
  });
});

describe('in-flight packets', () => {
  it('hands the session store the entries of each QoS 1/2 payload once, and none for QoS 0', () => {
    const f = new InFlight();
    const refs = [{ gseq: 1, bytes: 10 }];
    f.publish(Buffer.from('a'), 1, refs, true);
    f.publish(Buffer.from('b'), 0, [{ gseq: 2, bytes: 10 }], false);
    expect(f.take(Buffer.from('a'))).toEqual({ entries: refs, hist: true });
    expect(f.take(Buffer.from('a'))).toBeUndefined();
    expect(f.take(Buffer.from('b'))).toBeUndefined();
    expect([f.packets, f.entries, f.has(1), f.has(2)]).toEqual([2, 2, true, true]);
  });

  it('frees the entries of a packet never sent, and of one acknowledged', () => {
    const f = new InFlight();
    f.restore([7]);
    f.publish('p', 2, [{ gseq: 8, bytes: 1 }], false);
    f.settled();
    f.unsent('p', [{ gseq: 8, bytes: 1 }]);
    expect(f.take('p')).toBeUndefined();
    f.forget([{ gseq: 7, bytes: 1 }]);
    expect([f.has(7), f.has(8), f.entries, f.packets]).toEqual([false, false, 0, 0]);
  });

  it('waits until the last packet settles, or the deadline, or the abort', async () => {
    const f = new InFlight();
    await f.idle(60_000, new Promise(() => undefined));
    f.publish('p', 1, [{ gseq: 1, bytes: 1 }], false);
    const waiting = f.idle(60_000, new Promise(() => undefined));
    f.settled();
    await waiting;
    f.publish('q', 1, [{ gseq: 2, bytes: 1 }], false);
    await f.idle(60_000, Promise.resolve());
    await f.idle(1, new Promise(() => undefined));
    expect(f.packets).toBe(1);
  });
});

describe('backlog batches', () => {
  it('groups consecutive entries of one device and forward QoS, up to the size, in order', () => {
    const entries = [entry(1, 'a'), entry(2, 'a'), entry(3, 'a'), entry(4, 'b'), entry(5, 'a', 2), entry(6, 'a', 2)];
    const groups = batches(entries, 2, (e) => e.reading.qos);
    expect(groups.map((g) => g.map((e) => e.gseq))).toEqual([[1, 2], [3], [4], [5, 6]]);
    expect(batches(entries, 10, () => 1).map((g) => g.length)).toEqual([3, 1, 2]);
  });
});

describe('serial', () => {
  it('runs one job at a time and once more after requests made while it ran', async () => {
    let runs = 0;
    let release: () => void = () => undefined;
    const serial = new Serial(
      () => {
        runs++;
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
      () => undefined,
    );
    serial.request();
    serial.request();
    serial.request();
    expect(runs).toBe(1);
    release();
    await expect.poll(() => runs).toBe(2);
    release();
    await Promise.resolve();
    expect(runs).toBe(2);
  });
});
