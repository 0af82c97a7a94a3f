/**
 * What the forwarder needs from an upstream: a link that comes up and goes down, and a way to publish a message of
 * outbox entries and learn its fate. Two kinds: an MQTT broker (mqtt-transport.ts) and NATS JetStream
 * (nats-transport.ts).
 */
import type { EventEmitter } from 'node:events';
import type { Qos } from '../domain/model.js';
import type { EntryRef } from './in-flight.js';
import type { UpstreamReading } from './payload.js';

export interface LinkEvents {
  /** `window`: a bound on messages in flight the upstream asked for (MQTT 5 Receive Maximum), if any. */
  up: [{ window: number | undefined }];
  down: [];
}

export interface Message {
  readings: UpstreamReading[];
  refs: EntryRef[];
  qos: Qos;
  body: Buffer;
}

/**
 * - acked: the upstream has it, and its entries are gone from the outbox;
 * - unsent: it may not have reached the upstream, and its entries are still in the outbox: publish them again;
 * - held: the transport itself will send it again (an MQTT session packet); the forwarder leaves it alone.
 */
export type Fate = 'acked' | 'unsent' | 'held';

export interface Transport extends EventEmitter<LinkEvents> {
  /**
   * The first connection attempt, made once the forwarder listens for 'up' and 'down'. Rejects only when the upstream
   * can never be used as configured (a JetStream stream that cannot give exactly once); an unreachable upstream is
   * retried in the background.
   */
  start(): Promise<void>;
  readonly connected: boolean;
  readonly reconnects: number;
  /** Readings one message may carry (NATS: one, since its message id is the reading's mid). */
  readonly maxBatch: number;
  /** Outbox entries the transport will send again itself, from before a restart. */
  readonly restored: readonly number[];
  send(msg: Message, done: (fate: Fate) => void): void;
  /** QoS 0, from memory: nothing to acknowledge or remove. */
  sendQos0(deviceId: string, body: Buffer, done: (sent: boolean) => void): void;
  /** Ends the link and waits for the writes it started. */
  close(): Promise<void>;
}
