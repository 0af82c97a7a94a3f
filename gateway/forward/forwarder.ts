/**
 * The forwarder drains the durable outbox upstream (docs/architecture.md, "Upstream contract"). Its parts:
 * - lanes.ts: after every (re)connect, entries committed up to that moment are the backlog: they drain in gseq order
 *   at `backfillRate` (pacer.ts), marked `hist`, optionally `batchSize` per message (batches.ts). Entries committed
 *   after it are live and go first. Within each lane, per-device order is commit order.
 * - in-flight.ts: a bounded window (with MQTT 5, never more than the broker's Receive Maximum), and which outbox
 *   entries each packet carries. An entry leaves the outbox only when the upstream acknowledged it: for MQTT in the
 *   same write that forgets the packet (mqtt-transport.ts, session-store.ts), for NATS after the stream's
 *   acknowledgement (nats-transport.ts).
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
import { mqttTransport } from './mqtt-transport.js';
import { type NatsMetrics, natsTransport } from './nats-transport.js';
import { encodeUpstream, upstreamReading, type UpstreamReading } from './payload.js';
import type { Transport } from './transport.js';

export interface ForwarderMetrics extends NatsMetrics {
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
  const link: Transport =
    cfg.kind === 'nats'
      ? natsTransport({ cfg, gatewayId, store, lastGseq: deps.lastGseq, log, metrics, now, random: deps.random })
      : await mqttTransport({ cfg, gatewayId, store, inFlight, bodyOf, log, now, random: deps.random });
  inFlight.restore(link.restored);
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
  let retryTimer: NodeJS.Timeout | undefined;
  const pump = new Serial(pumpOnce, (err) => log.error({ err }, 'forwarder pump failed'));

  link.on('up', (info) => {
    metrics.connected(true);
    window = Math.min(cfg.inflight, info.window ?? 65535);
    lanes.reconnected();
    pump.request();
  });
  link.on('down', () => {
    metrics.connected(false);
    if (qos0.length > 0) drop(0, 'link_down', qos0.splice(0).length);
  });
  await link.start();

  function drop(qos: Qos, reason: 'link_down' | 'overflow', n: number): void {
    dropped[qos] += n;
    metrics.dropped(qos, reason, n);
  }

  function forwardQos(r: StoredReading): Qos {
    return Math.min(r.qos, cfg.maxQos) as Qos;
  }

  function publish(readings: UpstreamReading[], entries: OutboxEntry[]): void {
    const first = readings[0] as UpstreamReading;
    const qos = forwardQos(first);
    const body = bodyOf(readings);
    const refs = entries.map((e) => ({ gseq: e.gseq, bytes: e.bytes }));
    inFlight.publish(body, qos, refs, first.hist === true);
    forwarded[qos] += readings.length;
    metrics.forwarded(qos, readings.length);
    link.send({ readings, refs, qos, body }, (fate) => {
      inFlight.settled();
      if (fate === 'held') return;
      if (fate === 'unsent') {
        inFlight.unsent(body, refs);
        lanes.rewind(Math.min(...entries.map((e) => e.gseq)));
        // With the link still up (a JetStream ack that timed out) nothing else would wake the pump.
        retryTimer ??= setTimeout(() => {
          retryTimer = undefined;
          pump.request();
        }, cfg.backoff.baseMs);
        return;
      }
      inFlight.forget(refs);
      acked[qos] += readings.length;
      metrics.acked(qos, readings.length);
      ackRate.count(readings.length, now());
      pump.request();
    });
  }

  function sendQos0(): void {
    for (const r of qos0.splice(0)) {
      forwarded[0]++;
      metrics.forwarded(0, 1);
      const body = encodeUpstream(upstreamReading(r, gatewayId, false), cfg.encoding);
      link.sendQos0(r.deviceId, body, (sent) => {
        if (!sent) return drop(0, 'link_down', 1);
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
      const liveFrom = lanes.liveCursor;
      const live = (await store.outboxAfter(liveFrom, slots)).filter((e) => !inFlight.has(e.gseq));
      // A message that failed while we read was rewound to before liveFrom: read again, or its entries would be
      // passed over (with MQTT the reconnect's backlog covers them; a JetStream ack can fail with the link up).
      if (lanes.liveCursor < liveFrom) continue;
      for (const e of live) {
        // Before the publish: a send that fails at once rewinds, and must not be overtaken.
        lanes.sentLive(e.gseq);
        publish([upstreamReading(e.reading, gatewayId, false)], [e]);
      }
      slots = window - inFlight.packets;
      if (slots <= 0 || live.length > 0) continue;

      const budget = Math.min(slots * link.maxBatch, pacer.available());
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
      const backlogFrom = lanes.backlogCursor;
      const backlog = (await store.outboxAfter(backlogFrom, budget, lanes.boundary)).filter(
        (e) => !inFlight.has(e.gseq),
      );
      if (lanes.backlogCursor < backlogFrom) continue;
      if (backlog.length === 0) {
        lanes.backlogDrained();
        return;
      }
      pacer.take(backlog.length);
      lanes.sentBacklog(Math.max(...backlog.map((e) => e.gseq)));
      for (const group of batches(backlog, link.maxBatch, (e) => forwardQos(e.reading))) {
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
        clearTimeout(retryTimer);
        if (link.connected)
          await inFlight.idle(deadlineMs, new Promise<void>((resolve) => link.once('down', () => resolve())));
        await link.close();
      })();
      return closed;
    },
  };
}
