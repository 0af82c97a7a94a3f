/**
 * The forwarder drains the durable outbox upstream (DESIGN.md "Upstream contract").
 *
 * - Two lanes. After every (re)connect, entries committed up to that moment are the backlog: they drain in gseq order
 *   at `backfillRate`, marked `hist`, optionally `batchSize` per message. Entries committed after it are live and go
 *   first. Within each lane, per-device order is commit order.
 * - A bounded in-flight window (with MQTT 5, never more than the broker's Receive Maximum). An entry leaves the outbox
 *   only when the broker acknowledged its packet, in the same write that forgets the packet (session-store.ts).
 * - QoS 0 readings go from memory, bounded, and are dropped and counted while the link is down.
 */
import type { UpstreamOptions } from './options.js';
import type { Logger } from '../shared/log.js';
import type { Qos, StoredReading } from '../domain/model.js';
import type { CommitEntry, OutboxEntry, OutboxStore } from '../ingest/store-port.js';
import { encodeUpstream, upstreamReading, upstreamTopic, type UpstreamReading } from './payload.js';
import { SessionStore } from './session-store.js';
import { connectUpstream, type UpstreamLink } from './upstream.js';

export interface ForwarderMetrics {
  forwarded(qos: Qos, n: number): void;
  acked(qos: Qos, n: number): void;
  dropped(qos: Qos, reason: 'link_down' | 'overflow', n: number): void;
  connected(up: boolean): void;
}

export interface ForwardingStatus {
  enabled: true;
  connected: boolean;
  reconnects: number;
  window: number;
  inFlight: number;
  backlog: {
    readings: number;
    bytes: number;
    oldestAgeMs: number | null;
    drainRate: number;
    etaSeconds: number | null;
  };
  forwarded: [number, number, number];
  acked: [number, number, number];
  dropped: [number, number, number];
}

export interface ForwarderDeps {
  cfg: UpstreamOptions;
  gatewayId: string;
  store: OutboxStore;
  /** The highest gseq committed so far (the live/backlog boundary is taken from it at each connect). */
  lastGseq: number;
  log: Logger;
  metrics: ForwarderMetrics;
  now(): number;
  random(): number;
}

export interface Forwarder {
  /** Called after each successful commit with its entries. */
  committed(entries: readonly CommitEntry[]): void;
  status(): Promise<ForwardingStatus>;
  /** Stops sending, waits up to `deadlineMs` for acks of what is in flight, then closes the link. Idempotent. */
  close(deadlineMs: number): Promise<void>;
}

/** Acks per second are measured over this many seconds. */
const RATE_WINDOW_S = 10;

function payloadKey(payload: unknown): string {
  return Buffer.isBuffer(payload) ? payload.toString('latin1') : String(payload);
}

export async function startForwarder(deps: ForwarderDeps): Promise<Forwarder> {
  const { cfg, gatewayId, store, log, metrics, now } = deps;
  const pendingPayloads = new Map<string, { gseq: number; bytes: number }[]>();
  const session = await SessionStore.open(store, {
    take(payload) {
      const key = payloadKey(payload);
      const entries = pendingPayloads.get(key);
      pendingPayloads.delete(key);
      return entries;
    },
    // Packets restored from a previous run have no callback of ours: forget their entries here.
    completed(record) {
      for (const e of record.entries) inSession.delete(e.gseq);
    },
  });
  /** Outbox entries handed to MQTT.js and not yet acknowledged. */
  const inSession = new Set<number>(session.inFlightEntries());
  if (session.size > 0)
    log.info({ packets: session.size }, 'resuming the upstream session: packets in flight will be sent again');
  let highest = deps.lastGseq;
  let boundary = highest;
  let liveCursor = highest;
  let backlogCursor = 0;
  let window = cfg.inflight;
  let inFlight = 0;
  let closing = false;
  let tokens = 0;
  let tokensAt = now();
  let tokenTimer: NodeJS.Timeout | undefined;
  const qos0: StoredReading[] = [];
  const forwarded: [number, number, number] = [0, 0, 0];
  const acked: [number, number, number] = [0, 0, 0];
  const dropped: [number, number, number] = [0, 0, 0];
  /** [second, readings acked in it], oldest first, at most RATE_WINDOW_S of them. */
  const ackSeconds: [number, number][] = [];
  let idle: (() => void) | undefined;

  const clientId = cfg.clientId ?? `sensorgate-${gatewayId}`;
  const link: UpstreamLink = await connectUpstream(cfg, clientId, session, { log, now, random: deps.random });

  link.on('up', ({ receiveMaximum }) => {
    metrics.connected(true);
    window = Math.min(cfg.inflight, receiveMaximum ?? 65535);
    // Everything committed while the link was down is backlog from now on; what comes next is live.
    boundary = highest;
    liveCursor = Math.max(liveCursor, boundary);
    pump();
  });
  link.on('down', () => {
    metrics.connected(false);
    if (qos0.length > 0) drop(0, 'link_down', qos0.splice(0).length);
  });

  function drop(qos: Qos, reason: 'link_down' | 'overflow', n: number): void {
    dropped[qos] += n;
    metrics.dropped(qos, reason, n);
  }

  function forwardQos(r: StoredReading): Qos {
    return Math.min(r.qos, cfg.maxQos) as Qos;
  }

  function topicOf(deviceId: string): string {
    return upstreamTopic(cfg.topicTemplate, { prefix: cfg.topicPrefix, gatewayId, deviceId });
  }

  function publish(readings: UpstreamReading[], entries: OutboxEntry[]): void {
    const first = readings[0] as UpstreamReading;
    const qos = forwardQos(first);
    const body = encodeUpstream(readings.length === 1 ? first : readings, cfg.encoding);
    const properties =
      cfg.protocolVersion === 5
        ? {
            userProperties: { mid: readings.map((r) => r.mid).join(',') },
            contentType: cfg.encoding === 'json' ? 'application/json' : 'application/cbor',
          }
        : undefined;
    const refs = entries.map((e) => ({ gseq: e.gseq, bytes: e.bytes }));
    for (const e of entries) inSession.add(e.gseq);
    if (qos > 0) pendingPayloads.set(payloadKey(body), refs);
    inFlight++;
    forwarded[qos] += readings.length;
    metrics.forwarded(qos, readings.length);
    link.client.publish(topicOf(first.deviceId), body, { qos, ...(properties ? { properties } : {}) }, (err) => {
      inFlight--;
      if (inFlight === 0) idle?.();
      if (err) {
        // Once in the session, MQTT.js sends it again itself (after a restart at the latest).
        if (entries.some((e) => session.holds(e.gseq))) return;
        // Never stored nor sent (the connection closed while MQTT.js had it queued): send it again later.
        pendingPayloads.delete(payloadKey(body));
        for (const e of entries) inSession.delete(e.gseq);
        const min = Math.min(...entries.map((e) => e.gseq)) - 1;
        if (min < boundary) backlogCursor = Math.min(backlogCursor, min);
        else liveCursor = Math.min(liveCursor, min);
        return;
      }
      const finish = qos === 0 ? store.outboxDelete(refs) : Promise.resolve();
      finish.then(
        () => {
          for (const e of entries) inSession.delete(e.gseq);
          acked[qos] += readings.length;
          metrics.acked(qos, readings.length);
          countAck(readings.length);
          pump();
        },
        (e: unknown) => log.error({ err: e }, 'removing forwarded entries failed'),
      );
    });
  }

  function countAck(n: number): void {
    const second = Math.floor(now() / 1000);
    const last = ackSeconds.at(-1);
    if (last && last[0] === second) last[1] += n;
    else ackSeconds.push([second, n]);
    while ((ackSeconds[0]?.[0] ?? second) <= second - RATE_WINDOW_S) ackSeconds.shift();
  }

  function refill(): void {
    const t = now();
    tokens = Math.min(cfg.backfillRate, tokens + ((t - tokensAt) / 1000) * cfg.backfillRate);
    tokensAt = t;
  }

  let pumping = false;
  let again = false;
  function pump(): void {
    if (pumping) {
      again = true;
      return;
    }
    pumping = true;
    pumpOnce()
      .catch((err: unknown) => log.error({ err }, 'forwarder pump failed'))
      .finally(() => {
        pumping = false;
        if (again) {
          again = false;
          pump();
        }
      });
  }

  async function pumpOnce(): Promise<void> {
    while (!closing && link.connected) {
      for (const r of qos0.splice(0)) {
        forwarded[0]++;
        metrics.forwarded(0, 1);
        link.client.publish(
          topicOf(r.deviceId),
          encodeUpstream(upstreamReading(r, gatewayId, false), cfg.encoding),
          { qos: 0 },
          (err) => {
            if (err) return drop(0, 'link_down', 1);
            acked[0]++;
            metrics.acked(0, 1);
          },
        );
      }
      let slots = window - inFlight;
      if (slots <= 0) return;
      const live = (await store.outboxAfter(liveCursor, slots)).filter((e) => !inSession.has(e.gseq));
      for (const e of live) {
        publish([upstreamReading(e.reading, gatewayId, false)], [e]);
        liveCursor = Math.max(liveCursor, e.gseq);
      }
      slots = window - inFlight;
      if (slots <= 0 || live.length > 0) continue;

      refill();
      const budget = Math.min(slots * cfg.batchSize, Math.floor(tokens));
      if (budget <= 0) {
        const backlogLeft = backlogCursor < boundary && store.outboxStats().readings > inSession.size;
        if (backlogLeft && !tokenTimer) {
          tokenTimer = setTimeout(
            () => {
              tokenTimer = undefined;
              pump();
            },
            Math.ceil(1000 / cfg.backfillRate),
          );
        }
        return;
      }
      const backlog = (await store.outboxAfter(backlogCursor, budget, boundary)).filter((e) => !inSession.has(e.gseq));
      if (backlog.length === 0) {
        backlogCursor = boundary;
        return;
      }
      tokens -= backlog.length;
      backlogCursor = Math.max(backlogCursor, ...backlog.map((e) => e.gseq));
      for (const group of batches(backlog)) {
        publish(
          group.map((e) => upstreamReading(e.reading, gatewayId, true)),
          group,
        );
      }
    }
  }

  /** Consecutive backlog entries of one device and one forward QoS, up to batchSize per message. */
  function batches(entries: OutboxEntry[]): OutboxEntry[][] {
    const out: OutboxEntry[][] = [];
    for (const e of entries) {
      const last = out.at(-1);
      const head = last?.[0];
      if (
        last &&
        head &&
        last.length < cfg.batchSize &&
        head.reading.deviceId === e.reading.deviceId &&
        forwardQos(head.reading) === forwardQos(e.reading)
      ) {
        last.push(e);
      } else out.push([e]);
    }
    return out;
  }

  let closed: Promise<void> | undefined;
  return {
    committed(entries) {
      for (const e of entries) {
        if (e.gseq > highest) highest = e.gseq;
        if (e.reading && !e.outbox && e.reading.qos === 0) {
          if (!link.connected) drop(0, 'link_down', 1);
          else if (qos0.length >= cfg.qos0Buffer) drop(0, 'overflow', 1);
          else qos0.push(e.reading);
        }
      }
      pump();
    },
    async status() {
      const { readings, bytes } = store.outboxStats();
      const oldest = await store.outboxOldestRx();
      const t = now();
      countAck(0);
      const drainRate = ackSeconds.reduce((n, [, c]) => n + c, 0) / RATE_WINDOW_S;
      return {
        enabled: true,
        connected: link.connected,
        reconnects: link.reconnects,
        window,
        inFlight,
        backlog: {
          readings,
          bytes,
          oldestAgeMs: oldest === null ? null : t - oldest,
          drainRate,
          etaSeconds: readings === 0 ? 0 : drainRate > 0 ? Math.ceil(readings / drainRate) : null,
        },
        forwarded: [...forwarded],
        acked: [...acked],
        dropped: [...dropped],
      };
    },
    close(deadlineMs) {
      closed ??= (async () => {
        closing = true;
        clearTimeout(tokenTimer);
        if (inFlight > 0 && link.connected) {
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            idle = resolve;
            timer = setTimeout(resolve, deadlineMs);
            link.once('down', resolve);
          });
          clearTimeout(timer);
        }
        await link.close();
        await session.drain();
      })();
      return closed;
    },
  };
}
