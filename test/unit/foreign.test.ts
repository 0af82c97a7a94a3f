import { describe, expect, it } from 'vitest';
import { classifyForeign, foreignMeasurements } from '../../gateway/domain/foreign.js';

describe('foreign readings', () => {
  it('takes numeric leaves as dotted measurements and a bare number as value', () => {
    const tasmota = {
      Time: '2024-01-01T00:00:00',
      BME280: { Temperature: 21.5, Humidity: 40, Unit: 'C' },
      TempUnit: 'C',
    };
    expect(foreignMeasurements(tasmota)).toEqual({
      ok: true,
      m: { 'BME280.Temperature': 21.5, 'BME280.Humidity': 40 },
    });
    expect(foreignMeasurements(21.5)).toEqual({ ok: true, m: { value: 21.5 } });
    expect(foreignMeasurements({ state: 'on' })).toMatchObject({ ok: false, code: 'GW_PAYLOAD_INVALID' });
  });

  it('deduplicates equal content within the window and assigns increasing sequences', () => {
    let f = classifyForeign(null, 'h1', 1000, 500);
    expect(f).toMatchObject({ verdict: 'new', seq: 0 });
    f = classifyForeign(f.state, 'h1', 1400, 500);
    expect(f.verdict).toBe('duplicate');
    f = classifyForeign(f.state, 'h2', 1450, 500);
    expect(f).toMatchObject({ verdict: 'new', seq: 1 });
    f = classifyForeign(f.state, 'h1', 1500, 500);
    expect(f).toMatchObject({ verdict: 'new', seq: 2 });
  });
});
