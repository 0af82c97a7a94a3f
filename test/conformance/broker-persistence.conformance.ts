/**
 * The aedes-persistence conformance suite (node --test), run against exactly what the gateway runs: the persistence
 * of gateway/broker/persistence.ts on a sublevel of a LevelStore's own database, every write fsync'd.
 * Built to dist/ and run by `npm test` with `node --test`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { after } from 'node:test';
import { createBrokerPersistence } from '../../gateway/broker/persistence.js';
import { LevelStore } from '../../gateway/store/level-store.js';

const require = createRequire(import.meta.url);
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: {
  test: typeof test;
  persistence: () => Promise<unknown>;
}) => void;

const opened: { store: LevelStore; dir: string }[] = [];
after(async () => {
  for (const { store, dir } of opened) {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

abstractPersistence({
  test,
  async persistence() {
    const dir = await mkdtemp(join(tmpdir(), 'sensorgate-conformance-'));
    const { store } = await LevelStore.open(dir);
    opened.push({ store, dir });
    return createBrokerPersistence(store.db, store.committer);
  },
});
