/**
 * Fails a test file that leaves handles open (sockets, servers, child processes, file and database work): every test
 * must clean up what it started. Compares Node's active resources after the file with those before it, allowing a
 * short deadline for closes already under way. Timers are not compared: the runner's own come and go around hooks,
 * so their count says nothing about the test. Polls on setImmediate, so its own waiting adds no resource.
 */
import { afterAll, beforeAll } from 'vitest';

const DEADLINE_MS = 3000;
const IGNORED = new Set(['Timeout', 'Immediate']);

function activeByType(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) {
    if (!IGNORED.has(type)) counts.set(type, (counts.get(type) ?? 0) + 1);
  }
  return counts;
}

function leakedSince(baseline: Map<string, number>): string[] {
  return [...activeByType()]
    .filter(([type, n]) => n > (baseline.get(type) ?? 0))
    .map(([type, n]) => `${type} ×${n - (baseline.get(type) ?? 0)}`);
}

let baseline = new Map<string, number>();

beforeAll(() => {
  baseline = activeByType();
});

afterAll(async () => {
  const deadline = Date.now() + DEADLINE_MS;
  let leaked = leakedSince(baseline);
  while (leaked.length > 0 && Date.now() < deadline) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    leaked = leakedSince(baseline);
  }
  if (leaked.length > 0) throw new Error(`handles left open by this test file: ${leaked.join(', ')}`);
});
