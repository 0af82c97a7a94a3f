/**
 * Durable broker state: persistent sessions (subscriptions of clean=false clients and the QoS 1/2 messages queued for
 * them), retained messages, wills and the inbound QoS 2 state, kept by aedes-persistence-level in a sublevel of the
 * gateway's own LevelDB, its writes synced and the inbound QoS 2 state of deduplicated readings kept in memory
 * (aedes-internals.ts, section 3).
 */
import { createRequire } from 'node:module';
import type { Committer } from '../shared/group-commit.js';
import {
  type Batch,
  type Db,
  inboundInMemory,
  type Persistence,
  removeSession,
  storedSessions,
  type Sublevel,
  synced,
} from './aedes-internals.js';
import type { SessionStore } from './session-expiry.js';

const require = createRequire(import.meta.url);
const aedesPersistenceLevel = require('aedes-persistence-level') as (db: unknown) => Persistence;

/**
 * The Aedes persistence the gateway runs with; also what the conformance suite tests (its packets carry no verdict,
 * so all of them take the durable path).
 */
export function createBrokerPersistence(db: Db, committer: Committer<Batch>, syncInboundQos2 = true): Persistence {
  return inboundInMemory(aedesPersistenceLevel(synced(brokerSublevel(db), committer, syncInboundQos2)));
}

const brokerSublevel = (db: Db) => db.sublevel('broker', { keyEncoding: 'utf8', valueEncoding: 'buffer' }) as Sublevel;

/** The persistent sessions in that persistence, for session expiry. */
export function sessionStore(db: Db, persistence: Persistence): SessionStore {
  const sub = brokerSublevel(db);
  return { stored: () => storedSessions(sub), remove: (clientId) => removeSession(persistence, sub, clientId) };
}
