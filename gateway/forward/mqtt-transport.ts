/**
 * The MQTT upstream: MQTT.js over upstream.ts, with the persistent session of session-store.ts. A QoS 1/2 packet's
 * entries leave the outbox in the write that forgets the packet, when the broker acknowledged it; QoS 0 (maxQos 0)
 * entries are removed after the socket write.
 */
import { EventEmitter } from 'node:events';
import type { OutboxStore } from '../ingest/store-port.js';
import type { Logger } from '../shared/log.js';
import type { InFlight } from './in-flight.js';
import type { UpstreamOptions } from './options.js';
import { upstreamReading, upstreamTopic, type UpstreamReading } from './payload.js';
import { SessionStore } from './session-store.js';
import type { Fate, LinkEvents, Message, Transport } from './transport.js';
import { connectUpstream } from './upstream.js';

export interface MqttTransportDeps {
  cfg: UpstreamOptions;
  gatewayId: string;
  store: OutboxStore;
  inFlight: InFlight;
  /** The payload of one reading or of a backlog batch: the same bytes at the first send and after a restart. */
  bodyOf(readings: UpstreamReading[]): Buffer;
  log: Logger;
  now(): number;
  random(): number;
}

export async function mqttTransport(deps: MqttTransportDeps): Promise<Transport> {
  const { cfg, gatewayId, store, inFlight, log } = deps;
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
      return deps.bodyOf(readings);
    },
  );
  if (unrestorable > 0) {
    log.error({ packets: unrestorable }, 'upstream session packets whose readings are gone from the outbox: dropped');
  }
  if (session.size > 0) {
    log.info({ packets: session.size }, 'resuming the upstream session: packets in flight will be sent again');
  }
  const clientId = cfg.clientId ?? `sensorgate-${gatewayId}`;
  const link = await connectUpstream(cfg, clientId, session, deps);
  const topicOf = (deviceId: string) =>
    upstreamTopic(cfg.topicTemplate, { prefix: cfg.topicPrefix, gatewayId, deviceId });
  const events = new EventEmitter<LinkEvents>();
  link.on('up', ({ receiveMaximum }) => events.emit('up', { window: receiveMaximum }));
  link.on('down', () => events.emit('down'));

  function send(msg: Message, done: (fate: Fate) => void): void {
    const { readings, refs, qos, body } = msg;
    const first = readings[0] as UpstreamReading;
    const properties =
      cfg.protocolVersion === 5
        ? {
            userProperties: { mid: readings.map((r) => r.mid).join(',') },
            contentType: cfg.encoding === 'json' ? 'application/json' : 'application/cbor',
          }
        : undefined;
    link.client.publish(topicOf(first.deviceId), body, { qos, ...(properties ? { properties } : {}) }, (err) => {
      if (err) {
        // Once in the session, MQTT.js sends it again itself (after a restart at the latest); otherwise it was
        // never stored nor sent (the connection closed while MQTT.js had it queued).
        done(refs.some((e) => session.holds(e.gseq)) ? 'held' : 'unsent');
        return;
      }
      const finish = qos === 0 ? store.outboxDelete(refs) : Promise.resolve();
      finish.then(
        () => done('acked'),
        (e: unknown) => log.error({ err: e }, 'removing forwarded entries failed'),
      );
    });
  }

  // defineProperties, not Object.assign: assign would copy the getters' current values once.
  return Object.defineProperties(events, {
    // MQTT.js connects by itself from connectUpstream on; its events come from the socket, after the listeners.
    start: { value: async () => undefined },
    connected: { get: () => link.connected },
    reconnects: { get: () => link.reconnects },
    maxBatch: { value: cfg.batchSize },
    restored: { value: session.inFlightEntries() },
    send: { value: send },
    sendQos0: {
      value: (deviceId: string, body: Buffer, done: (sent: boolean) => void) =>
        link.client.publish(topicOf(deviceId), body, { qos: 0 }, (err) => done(!err)),
    },
    close: {
      value: async () => {
        await link.close();
        await session.drain();
      },
    },
  }) as Transport;
}
