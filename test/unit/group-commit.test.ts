import { describe, expect, it } from 'vitest';
import { Committer } from '../../gateway/shared/group-commit.js';

function deferred() {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

type Write = { ops: string[]; sync: boolean; done: ReturnType<typeof deferred> };

/** A committer whose batches are string arrays, and whose writes settle when the test says so. */
function controlled(intervalMs = 0) {
  const writes: Write[] = [];
  let written: () => void = () => undefined;
  const committer = new Committer<string[]>({
    newBatch: () => [],
    write(ops, sync) {
      const done = deferred();
      writes.push({ ops, sync, done });
      written();
      return done.promise;
    },
    intervalMs,
  });
  const nextWrite = () => new Promise<void>((r) => (written = r));
  return { committer, writes, nextWrite };
}

const noHooks = { onFailure() {}, onCommitted() {} };

describe('group commit', () => {
  it('collects the next batch while one is written, and settles entries in order', async () => {
    const { committer, writes, nextWrite } = controlled();
    const lane = committer.lane<number>({ stage: (b, e) => b.push(...e.map(String)), ...noHooks });
    const settled: number[] = [];
    const first = nextWrite();
    const all = [1, 2].map((n) => lane.enqueue(n, false).then(() => settled.push(n)));
    await first;
    expect(writes.map((w) => w.ops)).toEqual([['1', '2']]);
    all.push(...[3, 4, 5].map((n) => lane.enqueue(n, n === 4).then(() => settled.push(n))));
    const second = nextWrite();
    writes[0]!.done.resolve();
    await second;
    expect(writes[1]).toMatchObject({ ops: ['3', '4', '5'], sync: true });
    expect(writes[0]!.sync).toBe(false);
    writes[1]!.done.resolve();
    await Promise.all(all);
    expect(settled).toEqual([1, 2, 3, 4, 5]);
  });

  it('puts what every lane has waiting into one write, synced if any lane asked', async () => {
    const { committer, writes, nextWrite } = controlled();
    const committed: string[] = [];
    const readings = committer.lane<number>({
      stage: (b, e) => b.push(...e.map((n) => `r${n}`)),
      onFailure() {},
      onCommitted: (_e, info) => committed.push(`readings x${info.size} sync=${info.sync}`),
    });
    const session = committer.lane<string>({
      stage: (b, e) => b.push(...e),
      onFailure() {},
      onCommitted: (_e, info) => committed.push(`session x${info.size}`),
    });
    const watched: unknown[] = [];
    committer.watch((info) => watched.push({ entries: info.entries, sync: info.sync }));
    const first = nextWrite();
    const done = [readings.enqueue(1, false), session.enqueue('s1', true), readings.enqueue(2, false)];
    await first;
    expect(writes.map((w) => [w.ops, w.sync])).toEqual([[['r1', 'r2', 's1'], true]]);
    writes[0]!.done.resolve();
    await Promise.all(done);
    expect(committed).toEqual(['readings x2 sync=true', 'session x1']);
    expect(watched).toEqual([{ entries: 3, sync: true }]);
  });

  it('starts a synced write no sooner than the interval after the previous one, gathering what comes meanwhile', async () => {
    const { committer, writes, nextWrite } = controlled(150);
    const lane = committer.lane<number>({ stage: (b, e) => b.push(...e.map(String)), ...noHooks });
    let w = nextWrite();
    const first = lane.enqueue(1, true);
    await w;
    const startedFirst = performance.now();
    writes[0]!.done.resolve();
    await first;
    w = nextWrite();
    const later = [2, 3, 4].map((n) => lane.enqueue(n, true));
    // Entries arriving while the next write waits for the interval join it.
    await new Promise((r) => setImmediate(r));
    later.push(lane.enqueue(5, true));
    await w;
    expect(performance.now() - startedFirst).toBeGreaterThanOrEqual(140);
    expect(writes[1]!.ops).toEqual(['2', '3', '4', '5']);
    writes[1]!.done.resolve();
    await Promise.all(later);
  });

  it('does not hold unsynced writes back for the interval', async () => {
    const { committer, writes, nextWrite } = controlled(60_000);
    const lane = committer.lane<number>({ stage: (b, e) => b.push(...e.map(String)), ...noHooks });
    let w = nextWrite();
    const synced = lane.enqueue(1, true);
    await w;
    writes[0]!.done.resolve();
    await synced;
    w = nextWrite();
    const unsynced = lane.enqueue(2, false);
    await w;
    writes[1]!.done.resolve();
    await unsynced;
    expect(writes.map((x) => x.sync)).toEqual([true, false]);
  });

  it('fails the failing batch and everything queued behind it, telling the owner first', async () => {
    const { committer, writes, nextWrite } = controlled();
    const failedSeen: number[][] = [];
    const lane = committer.lane<number>({
      stage: (b, e) => b.push(...e.map(String)),
      onFailure: (entries) => failedSeen.push([...entries]),
      onCommitted() {},
    });
    const first = nextWrite();
    const settle = (p: Promise<void>) =>
      p.then(
        () => 'ok',
        () => 'failed',
      );
    const results = [1, 2].map((n) => settle(lane.enqueue(n, true)));
    await first;
    results.push(...[3, 4, 5].map((n) => settle(lane.enqueue(n, true))));
    writes[0]!.done.reject(new Error('disk on fire'));
    expect(await Promise.all(results)).toEqual(['failed', 'failed', 'failed', 'failed', 'failed']);
    expect(failedSeen).toEqual([[1, 2, 3, 4, 5]]);
    expect(writes).toHaveLength(1);
    const again = nextWrite();
    const later = lane.enqueue(6, true);
    await again;
    writes[1]!.done.resolve();
    await expect(later).resolves.toBeUndefined();
  });

  it('fails a lane whose entries cannot be staged, and the others of that batch, without a write', async () => {
    const { committer, writes } = controlled();
    const good = committer.lane<number>({ stage: (b, e) => b.push(...e.map(String)), ...noHooks });
    const bad = committer.lane<number>({
      stage: () => {
        throw new Error('cannot encode');
      },
      ...noHooks,
    });
    const a = good.enqueue(1, true);
    const b = bad.enqueue(2, true);
    await expect(a).rejects.toThrow('cannot encode');
    await expect(b).rejects.toThrow('cannot encode');
    expect(writes).toHaveLength(0);
  });
});

describe('group commit on a closed store', () => {
  it('fails what is pending when no batch can be made, instead of throwing', async () => {
    const committer = new Committer<string[]>({
      newBatch: () => {
        throw new Error('Database is not open');
      },
      write: async () => undefined,
      intervalMs: 0,
    });
    const failed: number[] = [];
    const lane = committer.lane<number>({
      stage: (b, e) => b.push(...e.map(String)),
      onFailure: (e) => failed.push(...e),
      onCommitted() {},
    });
    await expect(lane.enqueue(1, true)).rejects.toThrow('Database is not open');
    await committer.drain();
    expect(failed).toEqual([1]);
  });
});
