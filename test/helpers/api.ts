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
  SeriesView,
  StatsView,
} from '../../gateway/http/views.js';

export interface Reply<T> {
  status: number;
  body: T;
}

/** A GET; the body parsed as JSON when the answer says it is JSON, else the text. */
export async function getJson<T = unknown>(url: string, token?: string): Promise<Reply<T>> {
  const res = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return {
    status: res.status,
    body: (res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T,
  };
}

/** `token`: sent as a bearer token, for a gateway with `auth.tokensFile`. */
export function api(base: string, token?: string) {
  const get = <T>(path: string) => getJson<T>(`${base}${path}`, token);
  return {
    health: () => get<HealthView & { reason?: string }>('/healthz'),
    metrics: () => get<string>('/metrics'),
    stats: () => get<StatsView>('/api/v1/stats'),
    /** `query`: the query string with its `?`, as a test wants to send it (malformed on purpose, say). */
    devices: (query = '') => get<DevicesView>(`/api/v1/devices${query}`),
    readings: (deviceId: string, query = '') => get<ReadingsView>(`/api/v1/devices/${deviceId}/readings${query}`),
    deadLetters: (query = '') => get<DeadLettersView>(`/api/v1/deadletter${query}`),
    forwarding: () => get<ForwardingStatus>('/api/v1/forwarding'),
    series: (deviceId: string, query = '') => get<SeriesView>(`/api/v1/devices/${deviceId}/series${query}`),
    /** Any other path, for the error answers. */
    get: (path: string) => get<ErrorView>(path),
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
