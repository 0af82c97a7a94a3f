/**
 * Ingest: decode → validate → dedup → one atomic store batch → allow the ack. A message is placed (place.ts)
 * synchronously when it arrives, against the device records that already include everything queued for commit
 * (device-states.ts); the group commit then settles entries in arrival order. If a batch fails, its devices are rolled
 * back to their durable records and none of its messages is acked.
 */
import { GatewayError } from '../domain/errors.js';
import type { DeviceRecord, Outcome, Qos } from '../domain/model.js';
import { DEVICE_ID_RE, type TopicRoute } from '../domain/topics.js';
import type { Logger } from '../shared/log.js';
import { DeviceStates, type QosCounters, UNATTRIBUTED } from './device-states.js';
import { Gate, type Refusal } from './gate.js';
import {
  type InboundMessage,
  type Placement,
  type PlaceOptions,
  placeContract,
  placeForeign,
  placeRejected,
  type Verdict,
} from './place.js';
import type { CommitEntry, TelemetryStore } from './store-port.js';
import { Tally } from './tally.js';
import { Throttle } from './throttle.js';

export interface IngestOptions {
  maxPayloadBytes: number;
  dedupWindow: number;
  foreignDedupWindowMs: number;
  foreign: PlaceOptions['foreign'];
  rejectLogIntervalMs: number;
  maxBatch: number;
  /** Whose clock a reading's `ts` comes from, and how far ahead of the gateway a device clock may be (clock.ts). */
  deviceClock: PlaceOptions['deviceClock'];
  maxClockSkewMs: number;
  /** When a device whose counter went back starts over (dedup.ts ResetRules). */
  resetConfirmations: number;
  maxSeqJump: number;
  maxBootJump: number;
  /** Off only for users who accept losing acked readings on power loss (see README). */
  syncWrites: boolean;
  /** Write QoS 1/2 readings to the outbox (when forwarding upstream is enabled). */
  outbox: boolean;
  /** Bytes of a payload kept in its dead letter, and how many dead letters are kept (the oldest go). */
  deadLetters: { maxPayloadBytes: number; maxCount: number };
}

/** What ingest reports, counted once a batch is durable. */
export interface IngestMetrics {
  outcome(outcome: Outcome, qos: Qos, n: number): void;
  missing(qos: Qos, delta: number): void;
  storeFailure(): void;
  /** Messages not written because the disk is nearly full: QoS 0 readings (and their dead letters). */
  diskFullDropped(what: 'qos0' | 'broker'): void;
  /** Old dead letters deleted to keep `deadLetters.maxCount`. */
  deadLettersDropped(n: number): void;
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

/** What became of one message. */
export interface Receipt {
  /**
   * Resolves when the message may be acked (the batch holding it is durable) and rejects when it must not be; null
   * when there is nothing to wait for (QoS 0).
   */
  done: Promise<void> | null;
  verdict: Verdict;
}

export interface Ingest {
  /** Takes one inbound telemetry message. */
  receive(msg: InboundMessage, route: Exclude<TopicRoute, { kind: 'status' | 'other' }>): Receipt;
  /** Device records as of the last successful write. */
  devices(): DeviceRecord[];
  /** Per-QoS totals over all devices, as of the last successful write. */
  totals(): QosCounters;
  /** The last write failure, cleared by the next successful write. */
  readonly lastWriteError: Error | null;
  /** Waits until everything accepted so far has been written or failed. */
  drain(): Promise<void>;
}

type Entry = CommitEntry & Pick<Placement, 'outcomes' | 'missingDelta' | 'reset'> & { qos: Qos };

export async function createIngest(deps: IngestDeps): Promise<Ingest> {
  const { store, options, log, metrics, now } = deps;
  const loaded = await store.loadDevices();
  if (loaded.unreadable > 0) {
    log.error(
      { devices: loaded.unreadable },
      'unreadable device records skipped: those devices start with fresh dedup state',
    );
  }
  const states = new DeviceStates(loaded.records);
  let gseq = await store.lastGseq();
  let lastWriteError: Error | null = null;
  const throttle = new Throttle(options.rejectLogIntervalMs);
  const gate = new Gate(deps.refusal ?? (() => null), log);
  const place: PlaceOptions = {
    ...options,
    reset: {
      confirmations: options.resetConfirmations,
      maxSeqJump: options.maxSeqJump,
      maxBootJump: options.maxBootJump,
    },
  };

  for (const record of states.devices()) {
    for (const qos of [0, 1, 2] as const) metrics.missing(qos, record.counters[qos].missing);
  }

  const commit = store.commitLane<Entry>({
    onCommitted(entries) {
      lastWriteError = null;
      const tally = new Tally();
      for (const e of entries) {
        if (e.device) states.settle(e.device);
        tally.add('received', e.qos);
        for (const o of e.outcomes) tally.add(o, e.qos);
        if (e.missingDelta !== 0) metrics.missing(e.qos, e.missingDelta);
        if (e.reset) metrics.bootReset();
      }
      tally.report(metrics.outcome);
      if (entries.some((e) => e.deadLetter)) prune();
      deps.onCommitted?.(entries);
    },
    onFailure(entries, err) {
      lastWriteError = err instanceof Error ? err : new Error(String(err));
      metrics.storeFailure();
      states.rollback(entries.flatMap((e) => (e.device ? [e.device.id] : [])));
      log.error({ err, entries: entries.length }, 'store write failed: nothing in it is acked, devices will retry');
    },
  });

  /** One prune at a time; dead letters added while one runs get another right after it. */
  let pruning = false;
  let pruneAgain = false;
  function prune(): void {
    if (pruning) {
      pruneAgain = true;
      return;
    }
    pruning = true;
    pruneAgain = false;
    store
      .pruneDeadLetters(options.deadLetters.maxCount)
      .then(
        (n) => {
          if (n === 0) return;
          metrics.deadLettersDropped(n);
          log.warn(
            { dropped: n, kept: options.deadLetters.maxCount },
            'oldest dead letters deleted (deadLetters.maxCount)',
          );
        },
        (err: unknown) => log.error({ err }, 'dead letters not pruned'),
      )
      .finally(() => {
        pruning = false;
        if (pruneAgain) prune();
      });
  }

  /** Beyond this many queued entries even QoS 0 waits for its write, so a flood cannot grow memory without bound. */
  const maxQueued = options.maxBatch * 4;

  function commitPlaced(msg: InboundMessage, p: Placement): Receipt {
    const entry: Entry = {
      gseq: ++gseq,
      device: p.device,
      qos: msg.qos,
      outcomes: p.outcomes,
      missingDelta: p.missingDelta,
      reset: p.reset,
    };
    if (p.reading) {
      entry.reading = p.reading;
      entry.outbox = options.outbox && msg.qos > 0;
    }
    if (p.deadLetter) {
      const { payload } = p.deadLetter;
      const max = options.deadLetters.maxPayloadBytes;
      entry.deadLetter = payload.length > max ? { ...p.deadLetter, payload: payload.subarray(0, max) } : p.deadLetter;
    }
    states.stage(p.device);
    const done = commit.enqueue(entry, msg.qos > 0 && options.syncWrites);
    // QoS 0 does not wait for its write (at most once; a failure is logged by onFailure) unless the writer is behind:
    // then waiting holds back the publisher's connection (Aedes reads no more of it), which is the backpressure.
    if (msg.qos > 0 || commit.pending > maxQueued) return { done, verdict: p.verdict };
    done.catch(() => undefined);
    return { done: null, verdict: p.verdict };
  }

  /** The log lines a placement calls for; rejections and dead letters at most once per interval per device. */
  function report(msg: InboundMessage, prev: DeviceRecord, deviceId: string | null, p: Placement, rx: number): void {
    const key = deviceId ?? msg.clientId ?? msg.topic;
    const letter = p.deadLetter;
    if (p.reset && p.reading) {
      const { boot, seq } = p.reading;
      log.warn(
        { deviceId, reading: { boot, seq }, from: prev.dedup?.current.boot },
        'device counter went back: it starts over (a boot reset)',
      );
    }
    if (letter && p.verdict === 'rejected') {
      throttle.run(key, rx, () =>
        log.warn(
          { deviceId, clientId: msg.clientId, topic: msg.topic, code: letter.code, reason: letter.reason },
          'message rejected, kept in dead letters',
        ),
      );
    } else if (letter) {
      throttle.run(key, rx, () =>
        log.warn({ deviceId, code: letter.code, reason: letter.reason }, 'reading not stored, kept in dead letters'),
      );
    }
    if (p.verdict !== 'new' && p.verdict !== 'rejected') log.debug({ deviceId, verdict: p.verdict }, 'not new');
  }

  return {
    receive(msg, route) {
      // A full disk stops every write: QoS 0 readings and dead letters too (dropped and counted), so that LevelDB never
      // runs into ENOSPC, after which it would refuse every write until reopened. A full backlog only stops QoS 1/2
      // readings, the only ones that go to the outbox.
      const refusal = gate.check();
      if (refusal?.code === 'GW_DISK_FULL' && msg.qos === 0) {
        metrics.diskFullDropped('qos0');
        return { done: null, verdict: 'refused' };
      }
      if (refusal && msg.qos > 0 && (refusal.code === 'GW_DISK_FULL' || route.kind !== 'badDevice')) {
        return { done: Promise.reject(new GatewayError(refusal.code, refusal.reason)), verdict: 'refused' };
      }
      const rx = now();
      const deviceId = route.kind === 'badDevice' ? null : route.deviceId;
      const prev = states.current(deviceId ?? UNATTRIBUTED);
      let p: Placement;
      switch (route.kind) {
        case 'telemetry':
          p = placeContract(prev, msg, route.deviceId, rx, place);
          break;
        case 'foreign':
          p = placeForeign(prev, msg, route.deviceId, route.rule, rx, place);
          break;
        case 'badDevice':
          p = placeRejected(
            prev,
            msg,
            null,
            {
              ok: false,
              code: 'GW_TOPIC_INVALID',
              reason: `device id "${route.deviceLevel.slice(0, 80)}" does not match ${DEVICE_ID_RE.source}`,
            },
            rx,
          );
          break;
      }
      report(msg, prev, deviceId, p, rx);
      return commitPlaced(msg, p);
    },
    devices: () => states.devices(),
    totals: () => states.totals(),
    get lastWriteError() {
      return lastWriteError;
    },
    drain: () => commit.drain(),
  };
}
