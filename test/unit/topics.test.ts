import { describe, expect, it } from 'vitest';
import { createTopicRouter, parseTopicPattern } from '../../gateway/domain/topics.js';

describe('topics', () => {
  const route = createTopicRouter({
    prefix: 'site/a',
    foreign: [{ topic: 'tele/{deviceId}/SENSOR' }, { topic: 'shellies/{deviceId}/+/temperature' }],
  });

  it('routes contract, status, foreign and other topics', () => {
    expect(route('site/a/ws-1/telemetry')).toEqual({ kind: 'telemetry', deviceId: 'ws-1' });
    expect(route('site/a/ws-1/status')).toEqual({ kind: 'status', deviceId: 'ws-1' });
    expect(route('tele/tasmota_1/SENSOR')).toEqual({ kind: 'foreign', deviceId: 'tasmota_1', rule: 0 });
    expect(route('shellies/sh1/sensor/temperature')).toEqual({ kind: 'foreign', deviceId: 'sh1', rule: 1 });
    expect(route('sensors/ws-1/telemetry')).toEqual({ kind: 'other' });
    expect(route('site/a/ws-1/telemetry/x')).toEqual({ kind: 'other' });
    expect(route('tele/x/STATE')).toEqual({ kind: 'other' });
  });

  it('flags a device level that breaks the id grammar instead of ignoring it', () => {
    expect(route('site/a/bad id/telemetry')).toEqual({ kind: 'badDevice', deviceLevel: 'bad id' });
    expect(route(`site/a/${'x'.repeat(65)}/telemetry`).kind).toBe('badDevice');
    expect(route('tele/Ü/SENSOR').kind).toBe('badDevice');
  });

  it('parses patterns with exactly one {deviceId}', () => {
    expect(parseTopicPattern('a/{deviceId}/b').ok).toBe(true);
    expect(parseTopicPattern('a/+/b').ok).toBe(false);
    expect(parseTopicPattern('{deviceId}/{deviceId}').ok).toBe(false);
    expect(parseTopicPattern('a/{deviceId}/#').ok).toBe(false);
    expect(parseTopicPattern('a//{deviceId}').ok).toBe(false);
  });
});
