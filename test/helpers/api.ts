/** A typed client of the gateway's HTTP API for tests: the bodies are the types the handlers are checked against. */
import { expect } from 'vitest';
import type { ForwardingStatus } from '../../gateway/forward/forwarder.js';
import type {
  DeadLettersView,
  DevicesView,
  DeviceView,
  ErrorView,
  HealthView,
  ReadingsView,
  StatsView,
} from '../../gateway/http/views.js';

export interface Reply<T> {
  status: number;
  body: T;
}

/** A GET; the body parsed as JSON when the answer says it is JSON, else the text. */
export async function getJson<T = unknown>(url: string): Promise<Reply<T>> {
  const res = await fetch(url);
  const text = await res.text();
  return {
    status: res.status,
    body: (res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T,
  };
}

export function api(base: string) {
  return {
    health: () => getJson<HealthView & { reason?: string }>(`${base}/healthz`),
    metrics: () => getJson<string>(`${base}/metrics`),
    stats: () => getJson<StatsView>(`${base}/api/v1/stats`),
    devices: () => getJson<DevicesView>(`${base}/api/v1/devices`),
    /** `query`: the query string with its `?`, as a test wants to send it (malformed on purpose, say). */
    readings: (deviceId: string, query = '') =>
      getJson<ReadingsView>(`${base}/api/v1/devices/${deviceId}/readings${query}`),
    deadLetters: (query = '') => getJson<DeadLettersView>(`${base}/api/v1/deadletter${query}`),
    forwarding: () => getJson<ForwardingStatus>(`${base}/api/v1/forwarding`),
    /** Any other path, for the error answers. */
    get: (path: string) => getJson<ErrorView>(`${base}${path}`),
  };
}

/** One page of a device's readings; the answer must be 200. */
export async function readingsOf(base: string, deviceId: string, query = ''): Promise<ReadingsView['readings']> {
  const { status, body } = await api(base).readings(deviceId, query);
  expect(status).toBe(200);
  return body.readings;
}

/** The device's entry in `/api/v1/devices`. */
export async function deviceView(base: string, id: string): Promise<DeviceView | undefined> {
  return (await api(base).devices()).body.devices.find((d) => d.id === id);
}
