import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../gateway/shared/group-commit.js';

function deferred() {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('group commit', () => {
  it('collects the next batch while one is written, and settles entries in order', async () => {
    const writes: { entries: number[]; sync: boolean; done: ReturnType<typeof deferred> }[] = [];
    const settled: number[] = [];
    let written!: () => void;
    const gc = new GroupCommit<number>({
      maxBatch: 100,
      write(entries, sync) {
        const done = deferred();
        writes.push({ entries: [...entries], sync, done });
        written();
        return done.promise;
      },
      onFailure() {},
      onCommitted() {},
    });
    const firstWrite = new Promise<void>((r) => (written = r));
    const all = [1, 2].map((n) => gc.enqueue(n, false).then(() => settled.push(n)));
    await firstWrite;
    expect(writes.map((w) => w.entries)).toEqual([[1, 2]]);
    all.push(...[3, 4, 5].map((n) => gc.enqueue(n, n === 4).then(() => settled.push(n))));
    const secondWrite = new Promise<void>((r) => (written = r));
    writes[0]!.done.resolve();
    await secondWrite;
    expect(writes[1]).toMatchObject({ entries: [3, 4, 5], sync: true });
    expect(writes[0]!.sync).toBe(false);
    writes[1]!.done.resolve();
    await Promise.all(all);
    expect(settled).toEqual([1, 2, 3, 4, 5]);
  });

  it('fails the failing batch and everything queued behind it, telling the owner first', async () => {
    const writes: ReturnType<typeof deferred>[] = [];
    let written!: () => void;
    const failedSeen: number[][] = [];
    const gc = new GroupCommit<number>({
      maxBatch: 2,
      write() {
        const d = deferred();
        writes.push(d);
        written();
        return d.promise;
      },
      onFailure(entries) {
        failedSeen.push([...entries]);
      },
      onCommitted() {},
    });
    const firstWrite = new Promise<void>((r) => (written = r));
    const results = [1, 2, 3, 4, 5].map((n) =>
      gc.enqueue(n, true).then(
        () => 'ok',
        () => 'failed',
      ),
    );
    await firstWrite;
    writes[0]!.reject(new Error('disk on fire'));
    expect(await Promise.all(results)).toEqual(['failed', 'failed', 'failed', 'failed', 'failed']);
    expect(failedSeen).toEqual([[1, 2, 3, 4, 5]]);
    expect(writes).toHaveLength(1);
    const again = new Promise<void>((r) => (written = r));
    const later = gc.enqueue(6, true);
    await again;
    writes[1]!.resolve();
    await expect(later).resolves.toBeUndefined();
  });
});
