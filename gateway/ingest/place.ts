/**
 * Where one message goes, decided without I/O: from the device's current record and the message, the device's next
 * record, the reading to store or the dead letter to keep, what it adds to the counters, and its verdict. Pure, so
 * that every rule can be tested without a broker or a database.
 */
import { type DeviceClock, readingTime } from '../domain/clock.js';
import { classify, type ResetRules, type Verdict as DedupVerdict } from '../domain/dedup.js';
import {
  classifyForeign,
  contentHash,
  dedupsByContent,
  type ForeignDedup,
  foreignMeasurements,
} from '../domain/foreign.js';
import type { DeadLetterCode } from '../domain/errors.js';
import type { Counters, DeadLetter, DeviceRecord, Outcome, Qos, StoredReading } from '../domain/model.js';
import { decodePayload, decodeReading, type Rejection } from '../domain/wire.js';
import { bump } from './tally.js';

export interface InboundMessage {
  topic: string;
  payload: Uint8Array;
  qos: Qos;
  clientId: string | null;
  /** MQTT 5 content type, if the device sent one. */
  contentType?: string | undefined;
}

/**
 * The one classification of a message, from arrival to ack: the dedup's verdict on a reading (foreign readings are
 * only ever new or a duplicate), or rejected (kept in the dead letters), or refused (not acked: the gate was shut).
 */
export type Verdict = DedupVerdict | 'rejected' | 'refused';

export interface Placement {
  verdict: Exclude<Verdict, 'refused'>;
  /** The device's record after this message (not yet durable). */
  device: DeviceRecord;
  /** Besides 'received': the counters it adds to ('stored' and 'late' for a late arrival). */
  outcomes: readonly Outcome[];
  missingDelta: number;
  /** The device started over (a boot reset). */
  reset: boolean;
  reading?: StoredReading;
  deadLetter?: DeadLetter;
}

export interface PlaceOptions {
  maxPayloadBytes: number;
  dedupWindow: number;
  foreignDedupWindowMs: number;
  /** Per foreign topic pattern, in the order of `ingest.foreign` (a foreign route's `rule` indexes it). */
  foreign: readonly { dedup: ForeignDedup; timeField: string }[];
  /** Whose clock a reading's `ts` comes from, and how far ahead of the gateway a device clock may be (clock.ts). */
  deviceClock: DeviceClock;
  maxClockSkewMs: number;
  /** When a device whose counter went back starts over. */
  reset: Omit<ResetRules, 'ts'>;
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

function deadLetter(
  msg: InboundMessage,
  deviceId: string | null,
  rx: number,
  code: DeadLetterCode,
  reason: string,
): DeadLetter {
  const { topic, clientId, qos, payload } = msg;
  return { rx, topic, clientId, deviceId, qos, code, reason, payload, payloadBytes: payload.length };
}

/** A message that failed decoding or validation, or named no valid device: kept raw with its reason. */
export function placeRejected(
  prev: DeviceRecord,
  msg: InboundMessage,
  deviceId: string | null,
  rejection: Rejection,
  rx: number,
): Placement {
  return {
    verdict: 'rejected',
    device: {
      ...prev,
      lastSeen: deviceId === null ? prev.lastSeen : rx,
      counters: bump(prev.counters, msg.qos, { received: 1, rejected: 1 }),
    },
    outcomes: OUTCOMES.rejected,
    missingDelta: 0,
    reset: false,
    deadLetter: deadLetter(msg, deviceId, rx, rejection.code, rejection.reason),
  };
}

/** A message on a device's contract topic: decoded, validated, placed by boot and seq. */
export function placeContract(
  prev: DeviceRecord,
  msg: InboundMessage,
  deviceId: string,
  rx: number,
  opts: PlaceOptions,
): Placement {
  const decoded = decodeReading(msg.payload, deviceId, {
    maxBytes: opts.maxPayloadBytes,
    contentType: msg.contentType,
  });
  if (!decoded.ok) return placeRejected(prev, msg, deviceId, decoded, rx);
  const r = decoded.value;
  const time = readingTime(r.ts, rx, opts.deviceClock, opts.maxClockSkewMs);
  const c = classify(prev.dedup, r.boot, r.seq, opts.dedupWindow, {
    ...opts.reset,
    ts: time.fromGateway ? null : r.ts,
  });
  const v = c.verdict;
  const stored = v === 'new' || v === 'late';
  const changes: Partial<Counters> = { received: 1, missing: c.missingDelta };
  if (stored) changes.stored = 1;
  if (stored && time.fromGateway) changes.gatewayTime = 1;
  if (v === 'late' || v === 'duplicate' || v === 'stale') changes[v] = 1;
  if (v === 'jump') changes.rejected = 1;
  const placement: Placement = {
    verdict: v,
    device: {
      ...prev,
      dedup: c.state,
      lastSeen: rx,
      counters: bump(prev.counters, msg.qos, changes),
      bootResets: prev.bootResets + (c.reset ? 1 : 0),
    },
    outcomes:
      stored && time.fromGateway ? (v === 'new' ? OUTCOMES.newGatewayTime : OUTCOMES.lateGatewayTime) : OUTCOMES[v],
    missingDelta: c.missingDelta,
    reset: c.reset,
  };
  if (stored) {
    placement.reading = { deviceId, boot: r.boot, seq: r.seq, ts: time.ts, rx, qos: msg.qos, m: r.m };
    if (time.fromGateway) placement.reading.tsSource = 'gateway';
  } else if (v === 'stale' || v === 'jump') {
    // Not provably a copy of a stored reading: kept with its bytes, so that nothing acked is lost without a trace.
    const at = prev.dedup?.current;
    placement.deadLetter =
      v === 'stale'
        ? deadLetter(
            msg,
            deviceId,
            rx,
            'GW_STALE',
            `boot ${r.boot} seq ${r.seq} is older than the device's window (boot ${at?.boot}, seq ${at?.highSeq}) and not known to be stored`,
          )
        : deadLetter(
            msg,
            deviceId,
            rx,
            'GW_SEQ_JUMP',
            `boot ${r.boot} seq ${r.seq} is far ahead of boot ${at?.boot} seq ${at?.highSeq}; believed after ${opts.reset.confirmations} in a row`,
          );
  }
  return placement;
}

/** A message on a foreign topic: any JSON or CBOR object of numbers, sequenced by the gateway, deduplicated by content. */
export function placeForeign(
  prev: DeviceRecord,
  msg: InboundMessage,
  deviceId: string,
  ruleIndex: number,
  rx: number,
  opts: PlaceOptions,
): Placement {
  const decoded = decodePayload(msg.payload, opts.maxPayloadBytes, msg.contentType);
  if (!decoded.ok) return placeRejected(prev, msg, deviceId, decoded, rx);
  const measured = foreignMeasurements(decoded.value);
  if (!measured.ok) return placeRejected(prev, msg, deviceId, measured, rx);
  const rule = opts.foreign[ruleIndex];
  if (!rule) throw new TypeError(`no foreign rule ${ruleIndex}: the topic router and ingest.foreign disagree`);
  const windowMs = dedupsByContent(decoded.value, rule.dedup, rule.timeField) ? opts.foreignDedupWindowMs : 0;
  const f = classifyForeign(prev.foreign, contentHash(msg.payload), rx, windowMs);
  const isNew = f.verdict === 'new';
  const placement: Placement = {
    verdict: f.verdict,
    device: {
      ...prev,
      foreign: f.state,
      lastSeen: rx,
      counters: bump(prev.counters, msg.qos, isNew ? { received: 1, stored: 1 } : { received: 1, duplicate: 1 }),
    },
    outcomes: isNew ? OUTCOMES.new : OUTCOMES.duplicate,
    missingDelta: 0,
    reset: false,
  };
  if (f.verdict === 'new') {
    placement.reading = { deviceId, boot: 0, seq: f.seq, ts: rx, rx, qos: msg.qos, m: measured.m, foreign: true };
  }
  return placement;
}
