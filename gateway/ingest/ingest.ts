/**
 * Ingest: decode → validate → dedup → one atomic store batch → allow the ack. Classification runs synchronously when
 * the message arrives, against the in-memory state that already includes everything queued for commit; the group
 * commit then settles entries in arrival order. If a batch fails, every device touched since the last successful
 * batch is rolled back to its durable state and none of those messages is acked.
 */
import { GatewayError } from '../domain/errors.js';
import type { Logger } from '../shared/log.js';
import type { TopicRoute } from '../domain/topics.js';
import { GroupCommit } from '../shared/group-commit.js';
import {
  zeroCounters,
  type Counters,
  type DeadLetter,
  type DeviceRecord,
  type Outcome,
  type Qos,
  type StoredReading,
} from '../domain/model.js';
import type { CommitEntry, TelemetryStore } from './store-port.js';
import { DEVICE_ID_RE } from '../domain/topics.js';
import { readingTime, type DeviceClock } from '../domain/clock.js';
import { classify } from '../domain/dedup.js';
import {
  classifyForeign,
  contentHash,
  dedupsByContent,
  foreignMeasurements,
  type ForeignDedup,
} from '../domain/foreign.js';
import { decodePayload, decodeReading, type Rejection } from '../domain/wire.js';

export interface InboundMessage {
  topic: string;
  payload: Uint8Array;
  qos: Qos;
  clientId: string | null;
  /** MQTT 5 content type, if the device sent one. */
  contentType?: string | undefined;
}

export interface IngestOptions {
  maxPayloadBytes: number;
  dedupWindow: number;
  foreignDedupWindowMs: number;
  /** Per foreign topic pattern, in the order of `ingest.foreign` (route.rule indexes it). */
  foreign: readonly { dedup: ForeignDedup; timeField: string }[];
  rejectLogIntervalMs: number;
  maxBatch: number;
  /** Whose clock a reading's `ts` comes from, and how far ahead of the gateway a device clock may be (clock.ts). */
  deviceClock: DeviceClock;
  maxClockSkewMs: number;
  /** When a device whose counter went back starts over (dedup.ts ResetRules). */
  resetConfirmations: number;
  maxSeqJump: number;
  maxBootJump: number;
  /** Off only for users who accept losing acked readings on power loss (see README). */
  syncWrites: boolean;
  /** Write QoS 1/2 readings to the outbox (when forwarding upstream is enabled). */
  outbox: boolean;
}

export interface Refusal {
  code: 'GW_BACKLOG_FULL' | 'GW_DISK_FULL';
  reason: string;
}

/** What ingest reports, counted once a batch is durable. */
export interface IngestMetrics {
  outcome(outcome: Outcome, qos: Qos, n: number): void;
  missing(qos: Qos, delta: number): void;
  batch(size: number, sync: boolean, ms: number): void;
  storeFailure(): void;
  bootReset(): void;
}

export interface IngestDeps {
  store: TelemetryStore;
  options: IngestOptions;
  log: Logger;
  metrics: IngestMetrics;
  now(): number;
  /**
   * Why new QoS 1/2 readings must be refused right now (backlog budget reached, disk nearly full), or null. A refused
   * reading is not acked: the device keeps it and sends it again.
   */
  refusal?: () => Refusal | null;
  /** Told about every successful commit (the forwarder). */
  onCommitted?: (entries: readonly CommitEntry[]) => void;
}

type QosCounters = readonly [Counters, Counters, Counters];

interface Entry extends CommitEntry {
  /** Besides 'received': what happened to the message ('stored' and 'late' for a late arrival). */
  outcomes: readonly Outcome[];
  qos: Qos;
  missingDelta: number;
  /** The device started over (counted once the batch is durable). */
  reset: boolean;
}

/** Counters of rejected messages that named no valid device live under this id, which no device id can take. */
export const UNATTRIBUTED = '$unattributed';

/** How dedup classified a reading: stored for the first time, or a duplicate of a stored one. */
export type Seen = 'first' | 'repeat';

export interface Accepted {
  /**
   * Resolves when the message may be acked (the batch holding it is durable) and rejects when it must not be; null
   * when there is nothing to wait for (QoS 0).
   */
  done: Promise<void> | null;
  /**
   * How dedup classified it: first (stored now) or a repeat of a stored reading; null if rejected, refused, or kept in
   * the dead letters as stale or an unconfirmed jump.
   */
  seen: Seen | null;
}

export interface Ingest {
  /** Takes one inbound telemetry message. */
  accept(msg: InboundMessage, route: Exclude<TopicRoute, { kind: 'status' | 'other' }>): Accepted;
  /** Device records as of the last successful write. */
  devices(): DeviceRecord[];
  /** Per-QoS totals over all devices, as of the last successful write. */
  totals(): QosCounters;
  /** The last write failure, cleared by the next successful write. */
  readonly lastWriteError: Error | null;
  /** Waits until everything accepted so far has been written or failed. */
  drain(): Promise<void>;
}

/**
 * A copy of the counters with one QoS's changed (records stay immutable: the durable ones are kept for rollback). Every
 * field is written out so that all counter objects share one shape and no `for…in` runs per message.
 */
function bump(counters: QosCounters, qos: Qos, d: Partial<Counters>): QosCounters {
  const o = counters[qos];
  const c: Counters = {
    received: o.received + (d.received ?? 0),
    stored: o.stored + (d.stored ?? 0),
    duplicate: o.duplicate + (d.duplicate ?? 0),
    stale: o.stale + (d.stale ?? 0),
    missing: o.missing + (d.missing ?? 0),
    late: o.late + (d.late ?? 0),
    rejected: o.rejected + (d.rejected ?? 0),
    gatewayTime: o.gatewayTime + (d.gatewayTime ?? 0),
  };
  return qos === 0
    ? [c, counters[1], counters[2]]
    : qos === 1
      ? [counters[0], c, counters[2]]
      : [counters[0], counters[1], c];
}

/** Shared, never mutated: one array per outcome kind instead of one per message. */
const OUTCOMES = {
  new: ['stored'],
  late: ['stored', 'late'],
  newGatewayTime: ['stored', 'gatewayTime'],
  lateGatewayTime: ['stored', 'late', 'gatewayTime'],
  jump: ['rejected'],
  duplicate: ['duplicate'],
  stale: ['stale'],
  rejected: ['rejected'],
} as const satisfies Record<string, readonly Outcome[]>;

function emptyRecord(id: string): DeviceRecord {
  return {
    id,
    dedup: null,
    foreign: null,
    lastSeen: 0,
    counters: [zeroCounters(), zeroCounters(), zeroCounters()],
    bootResets: 0,
  };
}

export async function createIngest(deps: IngestDeps): Promise<Ingest> {
  const { store, options, log, metrics, now } = deps;
  const durable = new Map<string, DeviceRecord>();
  for (const record of await store.loadDevices()) durable.set(record.id, record);
  const pending = new Map(durable);
  let gseq = await store.lastGseq();
  let lastWriteError: Error | null = null;
  const lastRejectLog = new Map<string, number>();
  const resetRules = {
    confirmations: options.resetConfirmations,
    maxSeqJump: options.maxSeqJump,
    maxBootJump: options.maxBootJump,
  };

  for (const record of durable.values()) {
    for (const qos of [0, 1, 2] as const) metrics.missing(qos, record.counters[qos].missing);
  }

  const commit = new GroupCommit<Entry>({
    maxBatch: options.maxBatch,
    write: (entries, sync) => store.write(entries, sync && options.syncWrites),
    onCommitted(entries, info) {
      lastWriteError = null;
      metrics.batch(info.size, info.sync, info.ms);
      // Counted per batch, not per message: a prom-client call per outcome was a visible share of the hot path.
      const tally = new Map<Outcome, [number, number, number]>();
      const count = (o: Outcome, qos: Qos) => {
        const byQos = tally.get(o) ?? [0, 0, 0];
        byQos[qos]++;
        tally.set(o, byQos);
      };
      for (const e of entries) {
        if (e.device) durable.set(e.device.id, e.device);
        count('received', e.qos);
        for (const o of e.outcomes) count(o, e.qos);
        if (e.missingDelta !== 0) metrics.missing(e.qos, e.missingDelta);
        if (e.reset) metrics.bootReset();
      }
      for (const [o, byQos] of tally) {
        for (const qos of [0, 1, 2] as const) if (byQos[qos] > 0) metrics.outcome(o, qos, byQos[qos]);
      }
      deps.onCommitted?.(entries);
    },
    onFailure(entries, err) {
      lastWriteError = err instanceof Error ? err : new Error(String(err));
      metrics.storeFailure();
      for (const e of entries) {
        if (!e.device) continue;
        const id = e.device.id;
        const before = durable.get(id);
        if (before) pending.set(id, before);
        else pending.delete(id);
      }
      log.error({ err, entries: entries.length }, 'store write failed: nothing in it is acked, devices will retry');
    },
  });

  /** The refusal last logged, so that each change is logged once. */
  let refusing: Refusal | null = null;
  /** The gate: a refused reading is not acked, so the device keeps it and sends it again later. */
  function refuse(msg: InboundMessage): Accepted | null {
    if (msg.qos === 0) return null;
    const now = deps.refusal?.() ?? null;
    if (now?.code !== refusing?.code) {
      if (now) log.warn({ code: now.code }, `${now.reason}: new QoS 1/2 readings are not acked until it clears`);
      else log.info({ code: refusing?.code }, 'acking QoS 1/2 readings again');
      refusing = now;
    }
    return now ? { done: Promise.reject(new GatewayError(now.code, now.reason)), seen: null } : null;
  }

  function record(id: string): DeviceRecord {
    return pending.get(id) ?? emptyRecord(id);
  }

  /** Beyond this many queued entries even QoS 0 waits for its write, so a flood cannot grow memory without bound. */
  const maxQueued = options.maxBatch * 4;

  function enqueue(entry: Entry): Promise<void> | null {
    if (entry.device) pending.set(entry.device.id, entry.device);
    const done = commit.enqueue(entry, entry.qos > 0);
    // QoS 0 does not wait for its write (at most once; a failure is logged by onFailure) unless the writer is behind:
    // then waiting holds back the publisher's connection (Aedes reads no more of it), which is the backpressure.
    if (entry.qos > 0 || commit.pending > maxQueued) return done;
    done.catch(() => undefined);
    return null;
  }

  function reject(msg: InboundMessage, deviceId: string | null, rejection: Rejection, rx: number): Accepted {
    const id = deviceId ?? UNATTRIBUTED;
    const prev = record(id);
    const device: DeviceRecord = {
      ...prev,
      lastSeen: deviceId === null ? prev.lastSeen : rx,
      counters: bump(prev.counters, msg.qos, { received: 1, rejected: 1 }),
    };
    const deadLetter: DeadLetter = {
      rx,
      topic: msg.topic,
      clientId: msg.clientId,
      deviceId,
      qos: msg.qos,
      code: rejection.code,
      reason: rejection.reason,
      payload: msg.payload,
    };
    logLimited(deviceId ?? msg.clientId ?? msg.topic, rx, () =>
      log.warn(
        { deviceId, clientId: msg.clientId, topic: msg.topic, code: rejection.code, reason: rejection.reason },
        'message rejected, kept in dead letters',
      ),
    );
    return {
      done: enqueue({
        gseq: ++gseq,
        device,
        deadLetter,
        outcomes: OUTCOMES.rejected,
        qos: msg.qos,
        missingDelta: 0,
        reset: false,
      }),
      seen: null,
    };
  }

  /** Logs at most once per `rejectLogIntervalMs` for each key (a device, else a client or topic). */
  function logLimited(key: string, rx: number, write: () => void): void {
    const logged = lastRejectLog.get(key);
    if (logged !== undefined && rx - logged < options.rejectLogIntervalMs) return;
    lastRejectLog.set(key, rx);
    write();
  }

  function acceptContract(msg: InboundMessage, deviceId: string, rx: number): Accepted {
    const decoded = decodeReading(msg.payload, deviceId, {
      maxBytes: options.maxPayloadBytes,
      contentType: msg.contentType,
    });
    if (!decoded.ok) return reject(msg, deviceId, decoded, rx);
    const r = decoded.value;
    const prev = record(deviceId);
    const time = readingTime(r.ts, rx, options.deviceClock, options.maxClockSkewMs);
    const c = classify(prev.dedup, r.boot, r.seq, options.dedupWindow, {
      ...resetRules,
      ts: time.fromGateway ? null : r.ts,
    });
    const v = c.verdict;
    const stored = v === 'new' || v === 'late';
    const changes: Partial<Counters> = { received: 1, missing: c.missingDelta };
    if (stored) changes.stored = 1;
    if (stored && time.fromGateway) changes.gatewayTime = 1;
    if (v === 'late' || v === 'duplicate' || v === 'stale') changes[v] = 1;
    if (v === 'jump') changes.rejected = 1;
    const device: DeviceRecord = {
      ...prev,
      dedup: c.state,
      lastSeen: rx,
      counters: bump(prev.counters, msg.qos, changes),
      bootResets: prev.bootResets + (c.reset ? 1 : 0),
    };
    const outcomes =
      stored && time.fromGateway ? (v === 'new' ? OUTCOMES.newGatewayTime : OUTCOMES.lateGatewayTime) : OUTCOMES[v];
    const entry: Entry = { gseq: ++gseq, device, outcomes, qos: msg.qos, missingDelta: c.missingDelta, reset: c.reset };
    const reading = { boot: r.boot, seq: r.seq };
    if (stored) {
      entry.reading = { deviceId, boot: r.boot, seq: r.seq, ts: time.ts, rx, qos: msg.qos, m: r.m };
      if (time.fromGateway) entry.reading.tsSource = 'gateway';
      entry.outbox = options.outbox && msg.qos > 0;
      if (c.reset)
        log.warn(
          { deviceId, reading, from: prev.dedup?.current.boot },
          'device counter went back: it starts over (a boot reset)',
        );
    } else if (v === 'stale' || v === 'jump') {
      // Not provably a copy of a stored reading: kept with its bytes, so that nothing acked is lost without a trace.
      const code = v === 'stale' ? 'GW_STALE' : 'GW_SEQ_JUMP';
      const reason =
        v === 'stale'
          ? `boot ${r.boot} seq ${r.seq} is older than the device's window (boot ${prev.dedup?.current.boot}, seq ${prev.dedup?.current.highSeq}) and not known to be stored`
          : `boot ${r.boot} seq ${r.seq} is far ahead of boot ${prev.dedup?.current.boot} seq ${prev.dedup?.current.highSeq}; believed after ${resetRules.confirmations} in a row`;
      entry.deadLetter = {
        rx,
        topic: msg.topic,
        clientId: msg.clientId,
        deviceId,
        qos: msg.qos,
        code,
        reason,
        payload: msg.payload,
      };
      logLimited(deviceId, rx, () =>
        log.warn({ deviceId, reading, code, reason }, 'reading not stored, kept in dead letters'),
      );
    }
    if (v !== 'new') log.debug({ deviceId, reading, verdict: v }, 'not new');
    return { done: enqueue(entry), seen: stored ? 'first' : v === 'duplicate' ? 'repeat' : null };
  }

  function acceptForeign(msg: InboundMessage, deviceId: string, ruleIndex: number, rx: number): Accepted {
    const decoded = decodePayload(msg.payload, options.maxPayloadBytes, msg.contentType);
    if (!decoded.ok) return reject(msg, deviceId, decoded, rx);
    const measured = foreignMeasurements(decoded.value);
    if (!measured.ok) return reject(msg, deviceId, measured, rx);
    const prev = record(deviceId);
    const rule = options.foreign[ruleIndex];
    if (!rule) throw new TypeError(`no foreign rule ${ruleIndex}: the topic router and ingest.foreign disagree`);
    const windowMs = dedupsByContent(decoded.value, rule.dedup, rule.timeField) ? options.foreignDedupWindowMs : 0;
    const f = classifyForeign(prev.foreign, contentHash(msg.payload), rx, windowMs);
    const isNew = f.verdict === 'new';
    const changes: Partial<Counters> = isNew ? { received: 1, stored: 1 } : { received: 1, duplicate: 1 };
    const device: DeviceRecord = {
      ...prev,
      foreign: f.state,
      lastSeen: rx,
      counters: bump(prev.counters, msg.qos, changes),
    };
    const entry: Entry = {
      gseq: ++gseq,
      device,
      outcomes: isNew ? OUTCOMES.new : OUTCOMES.duplicate,
      qos: msg.qos,
      missingDelta: 0,
      reset: false,
    };
    if (f.verdict === 'new') {
      const reading: StoredReading = {
        deviceId,
        boot: 0,
        seq: f.seq,
        ts: rx,
        rx,
        qos: msg.qos,
        m: measured.m,
        foreign: true,
      };
      entry.reading = reading;
      entry.outbox = options.outbox && msg.qos > 0;
    }
    return { done: enqueue(entry), seen: isNew ? 'first' : 'repeat' };
  }

  return {
    accept(msg, route) {
      const refused = route.kind === 'badDevice' ? null : refuse(msg);
      if (refused) return refused;
      const rx = now();
      switch (route.kind) {
        case 'telemetry':
          return acceptContract(msg, route.deviceId, rx);
        case 'foreign':
          return acceptForeign(msg, route.deviceId, route.rule, rx);
        case 'badDevice':
          return reject(
            msg,
            null,
            {
              ok: false,
              code: 'GW_TOPIC_INVALID',
              reason: `device id "${route.deviceLevel.slice(0, 80)}" does not match ${DEVICE_ID_RE.source}`,
            },
            rx,
          );
      }
    },
    devices: () => [...durable.values()].filter((d) => d.id !== UNATTRIBUTED),
    totals() {
      const totals: [Counters, Counters, Counters] = [zeroCounters(), zeroCounters(), zeroCounters()];
      for (const d of durable.values()) {
        d.counters.forEach((c, q) => {
          const t = totals[q] as Counters;
          for (const k of Object.keys(t) as (keyof Counters)[]) t[k] += c[k];
        });
      }
      return totals;
    },
    get lastWriteError() {
      return lastWriteError;
    },
    drain: () => commit.drain(),
  };
}
