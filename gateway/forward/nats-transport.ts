/**
 * The NATS JetStream upstream: every outbox entry is its own message on `{prefix}.{gatewayId}.{deviceId}` with the
 * `Nats-Msg-Id` header set to its `mid`, and leaves the outbox only after the stream's publish acknowledgement. The
 * stream drops a message whose id it saw within its duplicate window, so a re-send after a lost ack or a crash is
 * stored once, QoS 1 and QoS 2 alike (docs/scale.md). Reconnects follow our backoff (backoff.ts), not the client's.
 */
import { EventEmitter } from 'node:events';
import { connect, type ConnectionOptions, type JetStreamClient, millis, nanos, type NatsConnection } from 'nats';
import { GatewayError } from '../domain/errors.js';
import type { OutboxStore } from '../ingest/store-port.js';
import type { Logger } from '../shared/log.js';
import { Backoff } from './backoff.js';
import type { UpstreamOptions } from './options.js';
import type { UpstreamReading } from './payload.js';
import type { Fate, LinkEvents, Message, Transport } from './transport.js';

export interface NatsMetrics {
  /** Messages the stream acknowledged as duplicates: a re-send it had already stored. */
  upstreamDuplicate(n: number): void;
  /** Messages sent later than the duplicate window after they may first have reached the stream. */
  beyondDedupWindow(n: number): void;
}

export interface NatsTransportDeps {
  cfg: UpstreamOptions;
  gatewayId: string;
  store: OutboxStore;
  /** The highest gseq committed before this start: older entries may have been sent before it. */
  lastGseq: number;
  log: Logger;
  metrics: NatsMetrics;
  now(): number;
  random(): number;
}

/** Checks (or creates) the stream; throws GW_UPSTREAM_STREAM when it cannot give exactly once. */
async function ensureStream(nc: NatsConnection, cfg: UpstreamOptions, gatewayId: string, log: Logger): Promise<void> {
  const { stream, createStream, replicas, duplicateWindowMs } = cfg.nats;
  const jsm = await nc.jetstreamManager();
  const subjects = [`${cfg.topicPrefix}.>`];
  let info = await jsm.streams.info(stream).catch((err: unknown) => {
    if ((err as { code?: string }).code === '404' || /not found/i.test((err as Error).message)) return null;
    throw err;
  });
  if (!info) {
    if (!createStream) {
      throw new GatewayError(
        'GW_UPSTREAM_STREAM',
        `stream ${stream} does not exist (upstream.nats.createStream: false)`,
      );
    }
    info = await jsm.streams.add({
      name: stream,
      subjects,
      duplicate_window: nanos(duplicateWindowMs),
      num_replicas: replicas,
    });
    log.info({ stream, subjects, replicas, duplicateWindowMs }, 'upstream stream created');
  }
  const problems: string[] = [];
  const window = millis(info.config.duplicate_window);
  if (window < duplicateWindowMs) {
    problems.push(
      `its duplicate window is ${window} ms, less than upstream.nats.duplicateWindowMs (${duplicateWindowMs})`,
    );
  }
  if (info.config.no_ack) problems.push('it does not acknowledge publishes (no_ack)');
  const probe = `${cfg.topicPrefix}.${gatewayId}.probe`;
  const captured = await jsm.streams.find(probe).catch(() => null);
  if (captured !== stream) problems.push(`it does not capture ${probe} (${captured ?? 'no stream'} does)`);
  if (problems.length > 0) {
    throw new GatewayError('GW_UPSTREAM_STREAM', `stream ${stream} cannot give exactly once: ${problems.join('; ')}`);
  }
}

export function natsTransport(deps: NatsTransportDeps): Transport {
  const { cfg, gatewayId, store, log, metrics, now } = deps;
  const servers = cfg.url.split(',');
  const options: ConnectionOptions = {
    servers,
    name: cfg.clientId ?? `sensorgate-${gatewayId}`,
    reconnect: false,
    timeout: 10_000,
    ...(cfg.username === null ? {} : { user: cfg.username }),
    ...(cfg.password === null ? {} : { pass: cfg.password }),
    ...(cfg.tls.ca === null && cfg.tls.cert === null
      ? {}
      : {
          tls: {
            ...(cfg.tls.ca === null ? {} : { caFile: cfg.tls.ca }),
            ...(cfg.tls.cert === null ? {} : { certFile: cfg.tls.cert }),
            ...(cfg.tls.key === null ? {} : { keyFile: cfg.tls.key }),
          },
        }),
  };
  const backoff = new Backoff(cfg.backoff, deps.random);
  const events = new EventEmitter<LinkEvents>();
  const subjectOf = (deviceId: string) => `${cfg.topicPrefix}.${gatewayId}.${deviceId}`;
  /** When each entry was first handed to the stream in this run (until acknowledged). */
  const firstSent = new Map<number, number>();
  /** One warning per connection, not one per message of a late backlog. */
  let warnedBeyond = false;
  /** Publishes are failing: one warning until one succeeds again. */
  let failing = false;
  let nc: NatsConnection | null = null;
  let js: JetStreamClient | null = null;
  let reconnects = 0;
  let closing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  function retry(error: string): void {
    if (closing || timer) return;
    const delay = backoff.next();
    log.info({ url: cfg.url, error, backoffMs: delay }, `upstream down, next backoff will be ${delay} ms`);
    timer = setTimeout(() => {
      timer = undefined;
      reconnects++;
      void attempt(false);
    }, delay);
  }

  /** One connection attempt; at start-up a stream that cannot give exactly once is thrown, later it is logged. */
  async function attempt(atStart: boolean): Promise<void> {
    let conn: NatsConnection;
    try {
      conn = await connect(options);
    } catch (err) {
      retry((err as Error).message);
      return;
    }
    try {
      await ensureStream(conn, cfg, gatewayId, log);
    } catch (err) {
      await conn.close();
      if (atStart && err instanceof GatewayError) throw err;
      log.error({ err }, 'upstream stream check failed');
      retry((err as Error).message);
      return;
    }
    if (closing) return void (await conn.close());
    nc = conn;
    js = conn.jetstream();
    backoff.connected(now());
    log.info({ url: conn.getServer(), stream: cfg.nats.stream }, 'upstream connected');
    warnedBeyond = false;
    events.emit('up', { window: undefined });
    void conn.closed().then((err) => {
      nc = null;
      js = null;
      backoff.disconnected(now());
      if (closing) return;
      events.emit('down');
      retry(err?.message ?? 'connection closed');
    });
  }

  /** Whether the stream may have seen this entry longer than its duplicate window ago. */
  function beyondWindow(gseq: number, r: UpstreamReading, t: number): boolean {
    const first = firstSent.get(gseq);
    if (first !== undefined) return t - first > cfg.nats.duplicateWindowMs;
    // Committed before this start, it may have been sent before a crash, at the earliest when it arrived: an upper
    // bound, since a backlog that never got out is counted too.
    return gseq <= deps.lastGseq && t - r.rx > cfg.nats.duplicateWindowMs;
  }

  function send(msg: Message, done: (fate: Fate) => void): void {
    const client = js;
    const reading = msg.readings[0] as UpstreamReading;
    const ref = msg.refs[0] as Message['refs'][number];
    if (!client) {
      done('unsent');
      return;
    }
    const t = now();
    if (beyondWindow(ref.gseq, reading, t)) {
      metrics.beyondDedupWindow(1);
      if (!warnedBeyond) {
        warnedBeyond = true;
        log.warn(
          { mid: reading.mid, duplicateWindowMs: cfg.nats.duplicateWindowMs },
          'sending readings later than the stream duplicate window: the stream may store them twice (counted in sensorgate_upstream_beyond_dedup_window_total)',
        );
      }
    }
    if (!firstSent.has(ref.gseq)) firstSent.set(ref.gseq, t);
    client.publish(subjectOf(reading.deviceId), msg.body, { msgID: reading.mid, timeout: cfg.nats.ackTimeoutMs }).then(
      (ack) => {
        failing = false;
        if (ack.duplicate) metrics.upstreamDuplicate(1);
        store.outboxDelete(msg.refs).then(
          () => {
            firstSent.delete(ref.gseq);
            done('acked');
          },
          (err: unknown) => log.error({ err }, 'removing forwarded entries failed'),
        );
      },
      // No acknowledgement (a timeout, the connection lost): it may be in the stream; the re-send carries the same id.
      (err: unknown) => {
        if (!failing) log.warn({ err, mid: reading.mid }, 'upstream publish not acknowledged: it will be sent again');
        failing = true;
        done('unsent');
      },
    );
  }

  return Object.defineProperties(events, {
    start: { value: () => attempt(true) },
    connected: { get: () => nc !== null },
    reconnects: { get: () => reconnects },
    maxBatch: { value: 1 },
    restored: { value: [] },
    send: { value: send },
    sendQos0: {
      value: (deviceId: string, body: Buffer, done: (sent: boolean) => void) => {
        nc?.publish(subjectOf(deviceId), body);
        done(nc !== null);
      },
    },
    close: {
      value: () => {
        closing ??= (async () => {
          clearTimeout(timer);
          await nc?.close();
        })();
        return closing;
      },
    },
  }) as Transport;
}
