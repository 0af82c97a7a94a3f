/**
 * A weather station model: deterministic from its RNG, always inside the wire contract's ranges.
 *
 * - temperature: a daily cycle (minimum near sunrise, maximum mid-afternoon) around a station mean set by its latitude
 *   band and altitude (−6.5 °C per km), plus slowly varying noise; fronts cool it a little;
 * - humidity: anti-correlated with temperature, higher while it rains;
 * - pressure: sea-level pressure reduced for altitude, drifting with passing fronts (a dip and recovery);
 * - wind: a mean that rises with fronts, gusty, with a wandering direction;
 * - rain: events that start at random (more likely in a front), last a while and accumulate per interval;
 * - light: a daylight curve dimmed by cloud; battery: slow discharge, a little solar charge in daylight.
 */
import type { Rng } from './random.js';

export interface Station {
  /** Annual mean temperature at sea level, °C. */
  baseTempC: number;
  altitudeM: number;
  /** Amplitude of the daily temperature cycle, °C. */
  dailyAmpC: number;
  /** Local solar time offset from UTC, hours. */
  utcOffsetH: number;
  windinessMs: number;
}

export interface WeatherState {
  tempNoise: number;
  front: number;
  frontTarget: number;
  windMean: number;
  windDeg: number;
  raining: boolean;
  rainRateMmH: number;
  battV: number;
}

export type Measurements = {
  temp_c: number;
  rh_pct: number;
  pres_hpa: number;
  wind_ms: number;
  wind_deg: number;
  rain_mm: number;
  lux: number;
  batt_v: number;
};

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));
const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export function createStation(rng: Rng): Station {
  return {
    baseTempC: 2 + rng.next() * 22,
    altitudeM: Math.round(rng.next() ** 2 * 2500),
    dailyAmpC: 3 + rng.next() * 6,
    utcOffsetH: rng.int(-6, 6),
    windinessMs: 1 + rng.next() * 5,
  };
}

export function initialWeather(rng: Rng): WeatherState {
  return {
    tempNoise: rng.normal(),
    front: 0,
    frontTarget: 0,
    windMean: 2,
    windDeg: rng.next() * 360,
    raining: false,
    rainRateMmH: 0,
    battV: 3.9 + rng.next() * 0.3,
  };
}

/** Advances the weather by dtMs to time tMs and returns the new state and the measurements at tMs. */
export function stepWeather(
  station: Station,
  s: WeatherState,
  tMs: number,
  dtMs: number,
  rng: Rng,
): { state: WeatherState; m: Measurements } {
  const dtH = dtMs / 3_600_000;
  const hour = (((tMs / 3_600_000 + station.utcOffsetH) % 24) + 24) % 24;

  // Fronts: the front intensity (0…1) relaxes toward a target that occasionally jumps.
  let frontTarget = s.frontTarget;
  if (rng.next() < dtH / 18) frontTarget = frontTarget > 0.3 ? 0 : 0.4 + rng.next() * 0.6;
  const front = s.front + (frontTarget - s.front) * Math.min(1, dtH / 3);

  const decay = Math.exp(-dtH / 2);
  const tempNoise = s.tempNoise * decay + Math.sqrt(1 - decay * decay) * rng.normal();
  const daily = -Math.cos((2 * Math.PI * (hour - 3)) / 24);
  const temp = station.baseTempC - 0.0065 * station.altitudeM + station.dailyAmpC * daily + 1.2 * tempNoise - 3 * front;

  let raining = s.raining;
  let rainRateMmH = s.rainRateMmH;
  if (!raining && rng.next() < (dtH / 30) * (1 + 8 * front)) {
    raining = true;
    rainRateMmH = 0.5 + rng.next() * 6 * (0.3 + front);
  } else if (raining && rng.next() < dtH / 1.5) {
    raining = false;
    rainRateMmH = 0;
  }
  const rain = raining ? rainRateMmH * dtH * (0.5 + rng.next()) : 0;

  const rh =
    70 - 2.8 * (temp - (station.baseTempC - 0.0065 * station.altitudeM)) + (raining ? 20 : 0) + 4 * rng.normal();

  const seaLevel = 1015 - 28 * front + 1.5 * rng.normal() * Math.sqrt(Math.min(1, dtH * 10));
  const pres = seaLevel * Math.exp(-station.altitudeM / 8434);

  const windMean = s.windMean + (station.windinessMs * (1 + 2.5 * front) - s.windMean) * Math.min(1, dtH);
  const gust = Math.max(0, rng.normal()) * windMean * 0.6;
  const wind = Math.max(0, windMean * (0.7 + 0.3 * rng.next()) + gust);
  const windDeg = (((s.windDeg + rng.normal() * 15 * Math.sqrt(Math.max(dtH * 60, 0.01))) % 360) + 360) % 360;

  const elevation = Math.max(0, Math.sin((Math.PI * (hour - 6)) / 12));
  const lux = elevation * 110_000 * (1 - 0.7 * front) * (raining ? 0.3 : 1) * (0.9 + 0.1 * rng.next());

  const battV = clamp(s.battV - 0.02 * dtH + (elevation > 0.3 ? 0.03 * dtH * elevation : 0), 3.0, 4.2);

  return {
    state: { tempNoise, front, frontTarget, windMean, windDeg, raining, rainRateMmH, battV },
    m: {
      temp_c: round(clamp(temp, -90, 60), 2),
      rh_pct: round(clamp(rh, 0, 100), 1),
      pres_hpa: round(clamp(pres, 300, 1100), 1),
      wind_ms: round(clamp(wind, 0, 120), 2),
      wind_deg: round(clamp(windDeg, 0, 360), 0),
      rain_mm: round(clamp(rain, 0, 500), 2),
      lux: Math.round(clamp(lux, 0, 200_000)),
      batt_v: round(battV, 3),
    },
  };
}
