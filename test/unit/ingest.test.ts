import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { DeviceRecord } from '../../gateway/domain/model.js';
import { encodeReading, type Reading } from '../../gateway/domain/wire.js';
import { DeviceStates, emptyRecord, UNATTRIBUTED } from '../../gateway/ingest/device-states.js';
import { Gate, type Refusal } from '../../gateway/ingest/gate.js';
import { createIngest, type IngestMetrics, type IngestOptions } from '../../gateway/ingest/ingest.js';
import {
  type InboundMessage,
  type PlaceOptions,
  placeContract,
  placeForeign,
  placeRejected,
} from '../../gateway/ingest/place.js';
import type { CommitEntry, CommitHooks, TelemetryStore } from '../../gateway/ingest/store-port.js';
import { Committer, type Lane } from '../../gateway/shared/group-commit.js';
import { Tally } from '../../gateway/ingest/tally.js';
import { Throttle } from '../../gateway/ingest/throttle.js';

const T0 = Date.UTC(2026, 0, 1);

function logTo(lines: Record<string, unknown>[]) {
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      cb();
    },
  });
  return pino({ level: 'debug' }, stream);
}

const OPTIONS: PlaceOptions = {
  maxPayloadBytes: 8192,
  dedupWindow: 64,
  foreignDedupWindowMs: 60_000,
  foreign: [{ dedup: 'content', timeField: 'Time' }],
  deviceClock: 'auto',
  maxClockSkewMs: 3_600_000,
  reset: { confirmations: 3, maxSeqJump: 1_000_000, maxBootJump: 1000 },
};

function reading(seq: number, over: Partial<Reading> = {}): Reading {
  return { v: 1, boot: 1, seq, ts: T0 + seq * 1000, m: { temp_c: 20 }, ...over };
}

function msg(payload: Uint8Array, qos: 0 | 1 | 2 = 1): InboundMessage {
  return { topic: 'sensors/ws-1/telemetry', payload, qos, clientId: 'ws-1' };
}

const cbor = (r: Reading) => encodeReading(r, 'cbor');

describe('placing one message (pure)', () => {
  it('stores a new reading, counts a duplicate, fills a gap late and keeps a stale one as a dead letter', () => {
    let device = emptyRecord('ws-1');
    const place = (seq: number, over: Partial<Reading> = {}) => {
      const p = placeContract(device, msg(cbor(reading(seq, over))), 'ws-1', T0 + 100_000, OPTIONS);
      device = p.device;
      return p;
    };
    const first = place(0);
    expect(first.verdict).toBe('new');
    expect(first.reading).toMatchObject({ deviceId: 'ws-1', boot: 1, seq: 0, ts: T0, qos: 1 });
    expect(first.outcomes).toEqual(['stored']);
    expect(place(0).verdict).toBe('duplicate');
    expect(place(3).missingDelta).toBe(2);
    const late = place(1);
    expect([late.verdict, late.missingDelta, late.outcomes]).toEqual(['late', -1, ['stored', 'late']]);
    place(200);
    const stale = place(2);
    expect(stale.verdict).toBe('stale');
    expect(stale.reading).toBeUndefined();
    expect(stale.deadLetter).toMatchObject({ code: 'GW_STALE', deviceId: 'ws-1' });
    expect(device.counters[1]).toMatchObject({ received: 6, stored: 4, duplicate: 1, late: 1, stale: 1 });
  });

  it('stores an implausible device time at the gateway time, marked and counted', () => {
    const p = placeContract(emptyRecord('ws-1'), msg(cbor(reading(0, { ts: 0 }))), 'ws-1', T0, OPTIONS);
    expect(p.reading).toMatchObject({ ts: T0, tsSource: 'gateway' });
    expect(p.outcomes).toEqual(['stored', 'gatewayTime']);
  });

  it('keeps an undecodable payload with its bytes, reason and code, and counts it on the device', () => {
    const bytes = Buffer.from([0xff, 0x00, 0x13]);
    const p = placeContract(emptyRecord('ws-1'), msg(bytes, 2), 'ws-1', T0, OPTIONS);
    expect(p.verdict).toBe('rejected');
    expect(p.deadLetter?.payload).toEqual(bytes);
    expect(p.deadLetter?.code).toMatch(/^GW_PAYLOAD_/);
    expect(p.device.counters[2]).toMatchObject({ received: 1, rejected: 1 });
  });

  it('does not move the last-seen time of the unattributed record', () => {
    const prev: DeviceRecord = { ...emptyRecord(UNATTRIBUTED), lastSeen: 5 };
    const p = placeRejected(
      prev,
      msg(Buffer.from('{}')),
      null,
      { ok: false, code: 'GW_TOPIC_INVALID', reason: 'x' },
      T0,
    );
    expect(p.device.lastSeen).toBe(5);
    expect(p.deadLetter?.deviceId).toBeNull();
  });

  it('sequences foreign readings and drops equal content inside the window', () => {
    const body = Buffer.from(JSON.stringify({ temp: 21.5 }));
    const a = placeForeign(emptyRecord('sh-1'), msg(body), 'sh-1', 0, T0, OPTIONS);
    const b = placeForeign(a.device, msg(body), 'sh-1', 0, T0 + 1000, OPTIONS);
    expect([a.verdict, a.reading?.seq, a.reading?.foreign]).toEqual(['new', 0, true]);
    expect([b.verdict, b.reading]).toEqual(['duplicate', undefined]);
    expect(() => placeForeign(emptyRecord('sh-1'), msg(body), 'sh-1', 7, T0, OPTIONS)).toThrow(/no foreign rule 7/);
  });
});

describe('device states', () => {
  it('classifies against what is queued, and rolls a failed batch back to what is durable', () => {
    const durable = { ...emptyRecord('a'), lastSeen: 1 };
    const states = new DeviceStates([durable]);
    states.stage({ ...durable, lastSeen: 2 });
    states.stage({ ...emptyRecord('b'), lastSeen: 3 });
    expect(states.current('a').lastSeen).toBe(2);
    states.rollback(['a', 'b']);
    expect(states.current('a')).toBe(durable);
    expect(states.current('b')).toEqual(emptyRecord('b'));
  });

  it('lists devices without the unattributed record but counts it in the totals', () => {
    const rejected = placeRejected(
      emptyRecord(UNATTRIBUTED),
      msg(Buffer.from('x')),
      null,
      {
        ok: false,
        code: 'GW_TOPIC_INVALID',
        reason: 'x',
      },
      T0,
    ).device;
    const states = new DeviceStates([rejected, emptyRecord('a')]);
    expect(states.devices().map((d) => d.id)).toEqual(['a']);
    expect(states.totals()[1].rejected).toBe(1);
  });
});

describe('tally, throttle and gate', () => {
  it('reports each outcome and QoS once per batch', () => {
    const tally = new Tally();
    tally.add('stored', 1);
    tally.add('stored', 1);
    tally.add('duplicate', 0);
    const out: [string, number, number][] = [];
    tally.report((o, q, n) => out.push([o, q, n]));
    expect(out).toEqual([
      ['stored', 1, 2],
      ['duplicate', 0, 1],
    ]);
  });

  it('runs once per key and interval', () => {
    const throttle = new Throttle(1000);
    let runs = 0;
    for (const t of [0, 500, 999, 1000, 1500, 2000]) throttle.run('k', t, () => runs++);
    throttle.run('other', 500, () => runs++);
    expect(runs).toBe(4);
  });

  it('logs each change of refusal once', () => {
    const lines: Record<string, unknown>[] = [];
    let now: Refusal | null = null;
    const gate = new Gate(() => now, logTo(lines));
    gate.check();
    now = { code: 'GW_DISK_FULL', reason: 'disk nearly full' };
    expect(gate.check()).toBe(now);
    gate.check();
    now = null;
    expect(gate.check()).toBeNull();
    expect(lines.map((l) => l.msg)).toEqual([
      'disk nearly full: new QoS 1/2 readings are not acked until it clears',
      'acking QoS 1/2 readings again',
    ]);
  });
});

/** A store port in memory whose next write can be made to fail: enough to test the commit and rollback logic. */
class MemoryStore implements TelemetryStore {
  readonly batches: { entries: readonly CommitEntry[]; sync: boolean }[] = [];
  failNext = false;
  loadDevices = async () => ({ records: [], unreadable: 0 });
  lastGseq = async () => 41;
  readonly #committer = new Committer<CommitEntry[]>({
    newBatch: () => [],
    write: async (entries, sync) => {
      if (this.failNext) {
        this.failNext = false;
        throw new Error('disk on fire');
      }
      this.batches.push({ entries, sync });
    },
    intervalMs: 0,
  });
  commitLane<E extends CommitEntry>(hooks: CommitHooks<E>): Lane<E> {
    return this.#committer.lane<E>({ stage: (batch, entries) => batch.push(...entries), ...hooks });
  }
  readings = async () => ({ items: [], next: null });
  deadLetters = async () => [];
  /** The `keep` of every prune asked for. */
  readonly prunes: number[] = [];
  pruneDeadLetters = async (keep: number) => {
    this.prunes.push(keep);
    return 2;
  };
  close = async () => undefined;
}

const INGEST: IngestOptions = {
  ...OPTIONS,
  resetConfirmations: 3,
  maxSeqJump: 1_000_000,
  maxBootJump: 1000,
  rejectLogIntervalMs: 60_000,
  maxBatch: 64,
  syncWrites: true,
  outbox: true,
  deadLetters: { maxPayloadBytes: 16, maxCount: 5 },
};

function recordingMetrics() {
  const outcomes: string[] = [];
  const metrics: IngestMetrics = {
    outcome: (o, q, n) => outcomes.push(`${o}/${q}x${n}`),
    missing: () => undefined,
    storeFailure: () => outcomes.push('failure'),
    bootReset: () => undefined,
    deadLettersDropped: (n) => outcomes.push(`dropped x${n}`),
    diskFullDropped: (what) => outcomes.push(`disk full ${what}`),
  };
  return { outcomes, metrics };
}

describe('createIngest over a store port', () => {
  const route = { kind: 'telemetry', deviceId: 'ws-1' } as const;

  it('numbers entries after the last one stored, puts QoS 1/2 readings in the outbox and syncs their batch', async () => {
    const store = new MemoryStore();
    const { outcomes, metrics } = recordingMetrics();
    const ingest = await createIngest({ store, options: INGEST, log: logTo([]), metrics, now: () => T0 });
    const zero = ingest.receive(msg(cbor(reading(0)), 0), route);
    expect(zero).toEqual({ done: null, verdict: 'new' });
    const one = ingest.receive(msg(cbor(reading(1)), 1), route);
    await one.done;
    await ingest.drain();
    const entries = store.batches.flatMap((b) => b.entries);
    expect(entries.map((e) => [e.gseq, e.outbox])).toEqual([
      [42, false],
      [43, true],
    ]);
    expect(store.batches.at(-1)?.sync).toBe(true);
    expect(outcomes).toContain('stored/1x1');
    expect(ingest.devices()[0]?.counters[1].stored).toBe(1);
  });

  it('keeps the first maxPayloadBytes of a rejected payload with its full size, and prunes to maxCount after', async () => {
    const store = new MemoryStore();
    const { outcomes, metrics } = recordingMetrics();
    const ingest = await createIngest({ store, options: INGEST, log: logTo([]), metrics, now: () => T0 });
    const junk = Buffer.alloc(100, 0xff);
    await ingest.receive(msg(junk), route).done;
    await ingest.drain();
    const letter = store.batches.flatMap((b) => b.entries).find((e) => e.deadLetter)?.deadLetter;
    expect(letter?.payload).toEqual(junk.subarray(0, 16));
    expect(letter?.payloadBytes).toBe(100);
    await expect.poll(() => store.prunes).toEqual([5]);
    await expect.poll(() => outcomes).toContain('dropped x2');
  });

  it('acks nothing of a failed batch and classifies the resend against the durable state', async () => {
    const store = new MemoryStore();
    const { outcomes, metrics } = recordingMetrics();
    const ingest = await createIngest({ store, options: INGEST, log: logTo([]), metrics, now: () => T0 });
    store.failNext = true;
    const failed = ingest.receive(msg(cbor(reading(0))), route);
    await expect(failed.done).rejects.toThrow('disk on fire');
    expect(ingest.lastWriteError?.message).toBe('disk on fire');
    const resent = ingest.receive(msg(cbor(reading(0))), route);
    expect(resent.verdict).toBe('new');
    await resent.done;
    expect(ingest.lastWriteError).toBeNull();
    expect(outcomes).toEqual(['failure', 'received/1x1', 'stored/1x1']);
  });

  it('refuses QoS 1/2 while the gate is shut, with its code, and still takes QoS 0', async () => {
    const store = new MemoryStore();
    let refusal: Refusal | null = { code: 'GW_BACKLOG_FULL', reason: 'backlog budget reached' };
    const ingest = await createIngest({
      store,
      options: INGEST,
      log: logTo([]),
      metrics: recordingMetrics().metrics,
      now: () => T0,
      refusal: () => refusal,
    });
    const refused = ingest.receive(msg(cbor(reading(0)), 2), route);
    expect(refused.verdict).toBe('refused');
    await expect(refused.done).rejects.toMatchObject({ code: 'GW_BACKLOG_FULL' });
    expect(ingest.receive(msg(cbor(reading(1)), 0), route).verdict).toBe('new');
    refusal = null;
    await ingest.receive(msg(cbor(reading(0)), 2), route).done;
    await ingest.drain();
    expect(store.batches.flatMap((b) => b.entries).map((e) => e.reading?.seq)).toEqual([1, 0]);
  });
});
