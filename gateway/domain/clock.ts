/**
 * Which clock a reading's time comes from (`ingest.deviceClock`). A station without a real-time clock sends `ts: 0`,
 * or a time years off until it has synchronised; stored at that time, no query by time would ever find it.
 */

export const DEVICE_CLOCKS = ['auto', 'device', 'gateway'] as const;
export type DeviceClock = (typeof DEVICE_CLOCKS)[number];

/** 2020-01-01T00:00:00Z: no device time before it is believed in `auto`. */
const PLAUSIBLE_FROM_MS = Date.UTC(2020, 0, 1);

export interface ReadingTime {
  ts: number;
  /** The device's time was not used: `ts` is the gateway's receive time. */
  fromGateway: boolean;
}

/**
 * - device: the device's time, always;
 * - gateway: the receive time, always;
 * - auto: the device's time when it is plausible (from 2020 on, and at most `maxSkewMs` ahead of the gateway), else
 *   the receive time.
 */
export function readingTime(deviceTs: number, rx: number, mode: DeviceClock, maxSkewMs: number): ReadingTime {
  const useDevice =
    mode === 'device' || (mode === 'auto' && deviceTs >= PLAUSIBLE_FROM_MS && deviceTs <= rx + maxSkewMs);
  return useDevice ? { ts: deviceTs, fromGateway: false } : { ts: rx, fromGateway: true };
}
