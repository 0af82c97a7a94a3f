/**
 * The forwarder drains the durable outbox upstream (docs/architecture.md, "Upstream contract"). Its parts:
 * - lanes.ts: after every (re)connect, entries committed up to that moment are the backlog: they drain in gseq order
 *   at `backfillRate` (pacer.ts), marked `hist`, optionally `batchSize` per message (batches.ts). Entries committed
 *   after it are live and go first. Within each lane, per-device order is commit order.
 * - in-flight.ts: a bounded window (with MQTT 5, never more than the broker's Receive Maximum), and which outbox
 *   entries each packet carries. An entry leaves the outbox only when the broker acknowledged its packet, in the same
 *   write that forgets the packet (session-store.ts).
 * - QoS 0 readings go from memory, bounded, and are dropped and counted while the link is down.
 */
import type { UpstreamOptions } from './options.js';
import type { Logger } from '../shared/log.js';
import { AckRate } from './ack-rate.js';
import { batches } from './batches.js';
import { InFlight } from './in-flight.js';
import { Lanes } from './lanes.js';
import { Pacer } from './pacer.js';
import { Serial } from './serial.js';
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

export async function startForwarder(deps: ForwarderDeps): Promise<Forwarder> {
  const { cfg, gatewayId, store, log, metrics, now } = deps;
  const inFlight = new InFlight();
  /** One reading as an object, a backlog batch as an array: for the first send and for a session restored. */
  const bodyOf = (readings: UpstreamReading[]) =>
    encodeUpstream(readings.length === 1 ? (readings[0] as UpstreamReading) : readings, cfg.encoding);
  const { store: session, unrestorable } = await SessionStore.open(
    store,
    {
      take: (payload) => inFlight.take(payload),
      // Packets restored from a previous run have no callback of ours: forget their entries here.
      completed: (record) => inFlight.forget(record.entries),
    },
    async (record) => {
      const readings: UpstreamReading[] = [];
      for (const e of record.entries) {
        const [found] = await store.outboxAfter(e.gseq - 1, 1, e.gseq);
        if (!found) return null;
        readings.push(upstreamReading(found.reading, gatewayId, record.hist === true));
      }
      return bodyOf(readings);
    },
  );
  if (unrestorable > 0) {
    log.error({ packets: unrestorable }, 'upstream session packets whose readings are gone from the outbox: dropped');
  }
  inFlight.restore(session.inFlightEntries());
  if (session.size > 0) {
    log.info({ packets: session.size }, 'resuming the upstream session: packets in flight will be sent again');
  }
  const lanes = new Lanes(deps.lastGseq);
  const pacer = new Pacer(cfg.backfillRate, now);
  const ackRate = new AckRate(RATE_WINDOW_S);
  const qos0: StoredReading[] = [];
  const forwarded: [number, number, number] = [0, 0, 0];
  const acked: [number, number, number] = [0, 0, 0];
  const dropped: [number, number, number] = [0, 0, 0];
  let window = cfg.inflight;
  let closing = false;
  let paceTimer: NodeJS.Timeout | undefined;
  const pump = new Serial(pumpOnce, (err) => log.error({ err }, 'forwarder pump failed'));

  const clientId = cfg.clientId ?? `sensorgate-${gatewayId}`;
  const link: UpstreamLink = await connectUpstream(cfg, clientId, session, { log, now, random: deps.random });

  link.on('up', ({ receiveMaximum }) => {
    metrics.connected(true);
    window = Math.min(cfg.inflight, receiveMaximum ?? 65535);
    lanes.reconnected();
    pump.request();
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
    const body = bodyOf(readings);
    const properties =
      cfg.protocolVersion === 5
        ? {
            userProperties: { mid: readings.map((r) => r.mid).join(',') },
            contentType: cfg.encoding === 'json' ? 'application/json' : 'application/cbor',
          }
        : undefined;
    const refs = entries.map((e) => ({ gseq: e.gseq, bytes: e.bytes }));
    inFlight.publish(body, qos, refs, first.hist === true);
    forwarded[qos] += readings.length;
    metrics.forwarded(qos, readings.length);
    link.client.publish(topicOf(first.deviceId), body, { qos, ...(properties ? { properties } : {}) }, (err) => {
      inFlight.settled();
      if (err) {
        // Once in the session, MQTT.js sends it again itself (after a restart at the latest).
        if (entries.some((e) => session.holds(e.gseq))) return;
        // Never stored nor sent (the connection closed while MQTT.js had it queued): send it again later.
        inFlight.unsent(body, refs);
        lanes.rewind(Math.min(...entries.map((e) => e.gseq)));
        return;
      }
      const finish = qos === 0 ? store.outboxDelete(refs) : Promise.resolve();
      finish.then(
        () => {
          inFlight.forget(refs);
          acked[qos] += readings.length;
          metrics.acked(qos, readings.length);
          ackRate.count(readings.length, now());
          pump.request();
        },
        (e: unknown) => log.error({ err: e }, 'removing forwarded entries failed'),
      );
    });
  }

  function sendQos0(): void {
    for (const r of qos0.splice(0)) {
      forwarded[0]++;
      metrics.forwarded(0, 1);
      const body = encodeUpstream(upstreamReading(r, gatewayId, false), cfg.encoding);
      link.client.publish(topicOf(r.deviceId), body, { qos: 0 }, (err) => {
        if (err) return drop(0, 'link_down', 1);
        acked[0]++;
        metrics.acked(0, 1);
      });
    }
  }

  async function pumpOnce(): Promise<void> {
    while (!closing && link.connected) {
      sendQos0();
      let slots = window - inFlight.packets;
      if (slots <= 0) return;
      const live = (await store.outboxAfter(lanes.liveCursor, slots)).filter((e) => !inFlight.has(e.gseq));
      for (const e of live) {
        publish([upstreamReading(e.reading, gatewayId, false)], [e]);
        lanes.sentLive(e.gseq);
      }
      slots = window - inFlight.packets;
      if (slots <= 0 || live.length > 0) continue;

      const budget = Math.min(slots * cfg.batchSize, pacer.available());
      if (budget <= 0) {
        const backlogLeft = lanes.backlogLeft && store.outboxStats().readings > inFlight.entries;
        if (backlogLeft && !paceTimer) {
          paceTimer = setTimeout(() => {
            paceTimer = undefined;
            pump.request();
          }, pacer.retryMs);
        }
        return;
      }
      const backlog = (await store.outboxAfter(lanes.backlogCursor, budget, lanes.boundary)).filter(
        (e) => !inFlight.has(e.gseq),
      );
      if (backlog.length === 0) {
        lanes.backlogDrained();
        return;
      }
      pacer.take(backlog.length);
      lanes.sentBacklog(Math.max(...backlog.map((e) => e.gseq)));
      for (const group of batches(backlog, cfg.batchSize, (e) => forwardQos(e.reading))) {
        publish(
          group.map((e) => upstreamReading(e.reading, gatewayId, true)),
          group,
        );
      }
    }
  }

  let closed: Promise<void> | undefined;
  return {
    committed(entries) {
      for (const e of entries) {
        lanes.committed(e.gseq);
        if (e.reading && !e.outbox && e.reading.qos === 0) {
          if (!link.connected) drop(0, 'link_down', 1);
          else if (qos0.length >= cfg.qos0Buffer) drop(0, 'overflow', 1);
          else qos0.push(e.reading);
        }
      }
      pump.request();
    },
    async status() {
      const { readings, bytes } = store.outboxStats();
      const oldest = await store.outboxOldestRx();
      const t = now();
      const drainRate = ackRate.perSecond(t);
      return {
        enabled: true,
        connected: link.connected,
        reconnects: link.reconnects,
        window,
        inFlight: inFlight.packets,
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
        clearTimeout(paceTimer);
        if (link.connected)
          await inFlight.idle(deadlineMs, new Promise<void>((resolve) => link.once('down', () => resolve())));
        await link.close();
        await session.drain();
      })();
      return closed;
    },
  };
}
