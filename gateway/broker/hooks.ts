/**
 * Aedes hooks. Ingest runs in authorizePublish because it is the only hook whose callback gates the ack: Aedes 1.x
 * writes the QoS 1 PUBACK right after authorizePublish calls back, before `published` runs (lib/handlers/publish.js),
 * and stores a QoS 2 packet and sends PUBREC only after it. An error from the callback makes Aedes close the
 * connection without acking, so the device retries and dedup absorbs the resend.
 */
import type { AedesOptions } from 'aedes';
import { markVerdict } from './aedes-internals.js';
import type { Qos } from '../domain/model.js';
import type { Ingest } from '../ingest/ingest.js';
import type { TopicRoute } from '../domain/topics.js';

type AuthorizePublish = NonNullable<AedesOptions['authorizePublish']>;

export interface AckMetrics {
  /** Time from the PUBLISH to its ack being released (QoS 0: to its acceptance). */
  ack(qos: Qos, ms: number): void;
  diskFullDropped(what: 'qos0' | 'broker'): void;
}

export interface PublishHookDeps {
  route(topic: string): TopicRoute;
  ingest: Ingest;
  metrics: AckMetrics;
  now(): number;
  /**
   * Stores a retained message durably. Aedes stores it while routing, which for QoS 1 is after the PUBACK: storing it
   * here first (Aedes's own store later overwrites it with the same message) makes the ack mean "on disk".
   */
  storeRetained?: (packet: Parameters<AuthorizePublish>[1]) => Promise<unknown>;
  /** True while the disk is below the reserve. */
  diskFull(): boolean;
  /** Null when the client may publish to the topic, else why not (access.ts). */
  publishRefusal(client: Parameters<AuthorizePublish>[0], topic: string): string | null;
}

export function createAuthorizePublish(deps: PublishHookDeps): AuthorizePublish {
  const { route, ingest, metrics, now, storeRetained, publishRefusal, diskFull } = deps;
  return (client, packet, callback) => {
    // Packet identifier 0 is not allowed on QoS 1/2 [MQTT-2.3.1-1]: its ack could not be matched to it.
    if (client && packet.qos > 0 && packet.messageId === 0) {
      callback(new Error('QoS 1/2 PUBLISH with packet identifier 0'));
      return;
    }
    const refused = publishRefusal(client, packet.topic);
    if (refused !== null) {
      callback(new Error(refused));
      return;
    }
    const r = route(packet.topic);
    // A zero-length retained PUBLISH clears the topic's retained message [MQTT-3.3.1-10]: broker traffic, not a reading.
    const clearsRetained = packet.retain && packet.payload.length === 0;
    if (r.kind === 'other' || r.kind === 'status' || clearsRetained) {
      // Retained and QoS 1/2 broker messages are written (the retained store, the inbound QoS 2 state, the queues of
      // offline sessions): not while the disk is below its reserve.
      if ((packet.retain || packet.qos > 0) && diskFull()) {
        metrics.diskFullDropped('broker');
        callback(new Error('disk nearly full: retained and QoS 1/2 messages are refused'));
        return;
      }
      if (packet.retain && packet.qos > 0 && storeRetained) storeRetained(packet).then(() => callback(null), callback);
      else callback(null);
      return;
    }
    const started = now();
    const qos = packet.qos as Qos;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const { done, verdict } = ingest.receive(
      {
        topic: packet.topic,
        payload,
        qos,
        // null on the will path of a broker-published message
        clientId: client?.id ?? null,
        contentType: packet.properties?.contentType,
      },
      r,
    );
    // Left on the packet for routing and the inbound QoS 2 store (aedes-internals.ts, section 1).
    markVerdict(packet, verdict);
    const ack = () => {
      metrics.ack(qos, now() - started);
      callback(null);
    };
    if (done === null) ack();
    else done.then(ack, (err: Error) => callback(err));
  };
}
