/** The JSON bodies the HTTP API answers with: one definition for the handlers and for any client (the tests'). */
import type { Counters, DeadLetter, StoredReading } from '../domain/model.js';
import type { HttpErrorCode } from '../domain/errors.js';
import type { SeriesBucket } from '../domain/series.js';

export type HealthView = { status: 'ok' } | { status: 'unavailable'; reason: string };

export interface ByQos<T> {
  qos0: T;
  qos1: T;
  qos2: T;
}

export interface StorageView {
  /** Bytes of the database's files. */
  bytes: number;
  /** Free bytes on the data directory's filesystem. */
  freeBytes: number;
  /** Device time before which retention deleted readings (null: it has not, or is off). */
  horizonTs: number | null;
  retention: { maxAgeDays: number | null; maxBytes: number | null };
}

export type StatsView = ByQos<Counters> & { storage: StorageView };

export interface DeviceView {
  id: string;
  boot: number | null;
  highSeq: number | null;
  lastSeen: number;
  /** Device time of its oldest reading kept (retention moves it), or null when none is. */
  oldestTs: number | null;
  bootResets: number;
  counters: ByQos<Counters>;
  /** Its newest reading, or null when none is kept. */
  latest: StoredReading | null;
  /** Median gap between its recent readings, ms; null until known. */
  usualIntervalMs: number | null;
  /** No reading for longer than silentAfterMs (three usual intervals, or ui.silentAfterMs). */
  silent: boolean;
  silentAfterMs: number;
  /** Its newest batt_v is below ui.lowBatteryVolts. */
  lowBattery: boolean;
}

export interface DevicesView {
  devices: DeviceView[];
  /** The `after` of the next page (the last id of this one), or null at the end. */
  next: string | null;
}

export interface ReadingsView {
  readings: StoredReading[];
  /** Cursor of the next page, or null at the end. */
  next: string | null;
}

export type DeadLetterView = Omit<DeadLetter, 'payload'> & {
  /** The raw bytes, base64; null unless the request has the admin scope (a payload may hold anything a client sent). */
  payload: string | null;
};

export interface DeadLettersView {
  deadLetters: DeadLetterView[];
}

/** GET /api/v1/devices/{id}/series: min, mean and max per bucket of `step` ms, non-empty buckets only. */
export interface SeriesView {
  deviceId: string;
  from: number;
  to: number;
  step: number;
  buckets: SeriesBucket[];
}

export interface ErrorView {
  error: HttpErrorCode;
  message: string;
}
