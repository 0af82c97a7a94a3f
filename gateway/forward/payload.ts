/** The upstream contract (docs/architecture.md, "Upstream contract"): topic template and payload of a forwarded reading. */
import { cborEncoder } from '../domain/codec.js';
import type { StoredReading } from '../domain/model.js';

/** The idempotency key a cloud consumer deduplicates on. */
export function messageId(r: Pick<StoredReading, 'deviceId' | 'boot' | 'seq'>): string {
  return `${r.deviceId}:${r.boot}:${r.seq}`;
}

export interface UpstreamReading extends StoredReading {
  gw: string;
  mid: string;
  /** Set on readings sent from the backlog after an outage, behind live ones. */
  hist?: true;
}

export function upstreamReading(r: StoredReading, gatewayId: string, hist: boolean): UpstreamReading {
  return { ...r, gw: gatewayId, mid: messageId(r), ...(hist ? { hist: true as const } : {}) };
}

/** Topic from a template with {prefix}, {gatewayId} and {deviceId}. */
export function upstreamTopic(template: string, vars: { prefix: string; gatewayId: string; deviceId: string }): string {
  return template
    .replaceAll('{prefix}', vars.prefix)
    .replaceAll('{gatewayId}', vars.gatewayId)
    .replaceAll('{deviceId}', vars.deviceId);
}

/** One reading as an object, or several (a backlog batch) as an array. */
export function encodeUpstream(body: UpstreamReading | UpstreamReading[], encoding: 'json' | 'cbor'): Buffer {
  return encoding === 'json' ? Buffer.from(JSON.stringify(body)) : cborEncoder.encode(body);
}
