/**
 * The upstream MQTT connection: MQTT.js with a persistent session (clean=false, a stable client id, the persistent
 * outgoing store) and reconnects driven by our own backoff instead of MQTT.js's fixed reconnectPeriod. One log line
 * per state change.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import mqtt, { type IClientOptions, type IStore, type MqttClient } from 'mqtt';
import type { UpstreamOptions } from './options.js';
import type { Logger } from '../shared/log.js';
import { Backoff } from './backoff.js';

export interface UpstreamEvents {
  up: [{ receiveMaximum: number | undefined }];
  down: [];
}

export interface UpstreamLink extends EventEmitter<UpstreamEvents> {
  readonly client: MqttClient;
  readonly connected: boolean;
  readonly reconnects: number;
  /** Ends the connection (DISCONNECT if up; the broker keeps the session) and stops reconnecting. Idempotent. */
  close(): Promise<void>;
}

export async function connectUpstream(
  cfg: UpstreamOptions,
  clientId: string,
  outgoingStore: IStore,
  deps: { log: Logger; now(): number; random(): number },
): Promise<UpstreamLink> {
  const { log, now } = deps;
  const tls = cfg.tls;
  const options: IClientOptions = {
    clientId,
    clean: false,
    protocolVersion: cfg.protocolVersion,
    keepalive: cfg.keepaliveSeconds,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    outgoingStore,
    resubscribe: false,
    ...(cfg.username === null ? {} : { username: cfg.username }),
    ...(cfg.password === null ? {} : { password: cfg.password }),
    ...(tls.ca === null ? {} : { ca: await readFile(tls.ca) }),
    ...(tls.cert === null ? {} : { cert: await readFile(tls.cert) }),
    ...(tls.key === null ? {} : { key: await readFile(tls.key) }),
    rejectUnauthorized: tls.rejectUnauthorized,
    // MQTT 5 ends the session when the connection closes unless it has an expiry.
    ...(cfg.protocolVersion === 5 ? { properties: { sessionExpiryInterval: cfg.sessionExpirySeconds } } : {}),
  };
  const backoff = new Backoff(cfg.backoff, deps.random);
  const events = new EventEmitter<UpstreamEvents>();
  const client = mqtt.connect(cfg.url, options);
  let connected = false;
  let reconnects = 0;
  let closing: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let lastError = '';

  client.on('connect', (connack) => {
    connected = true;
    backoff.connected(now());
    log.info({ url: cfg.url, clientId, sessionPresent: connack.sessionPresent }, 'upstream connected');
    events.emit('up', { receiveMaximum: connack.properties?.receiveMaximum });
  });
  client.on('error', (err) => {
    lastError = err.message;
  });
  client.on('close', () => {
    if (closing) return;
    if (connected) {
      connected = false;
      backoff.disconnected(now());
      events.emit('down');
    }
    if (timer) return;
    const delay = backoff.next();
    log.info(
      { url: cfg.url, error: lastError || undefined, backoffMs: delay },
      `upstream down, next backoff will be ${delay} ms`,
    );
    timer = setTimeout(() => {
      timer = undefined;
      reconnects++;
      // Without the stores, MQTT.js's reconnect() swaps in fresh in-memory ones and the session would be lost.
      client.reconnect({ outgoingStore, incomingStore: client.incomingStore });
    }, delay);
  });

  // defineProperties, not Object.assign: assign would copy the getters' current values once.
  return Object.defineProperties(events, {
    client: { value: client },
    connected: { get: () => connected },
    reconnects: { get: () => reconnects },
    close: {
      value: () => {
        closing ??= (async () => {
          clearTimeout(timer);
          // Forced: a graceful end would wait for every in-flight ack; the session store keeps those packets anyway.
          await client.endAsync(true);
        })();
        return closing;
      },
    },
  }) as UpstreamLink;
}
