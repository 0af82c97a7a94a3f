/** The topic grammar: the only place that parses device topics. */

export const DEVICE_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export type TopicRoute =
  | { kind: 'telemetry'; deviceId: string }
  /** `rule`: the index of the foreign topic pattern that matched. */
  | { kind: 'foreign'; deviceId: string; rule: number }
  | { kind: 'status'; deviceId: string }
  /** A telemetry or foreign topic whose deviceId level breaks the contract: the message is rejected. */
  | { kind: 'badDevice'; deviceLevel: string }
  /** Any other topic: plain broker traffic, not ingested. */
  | { kind: 'other' };

interface TopicPattern {
  levels: readonly string[];
  deviceIndex: number;
}

export type PatternResult = { ok: true; pattern: TopicPattern } | { ok: false };

/** Parses `tele/{deviceId}/SENSOR`-style patterns: literal levels, `+`, and exactly one `{deviceId}`. */
export function parseTopicPattern(text: string): PatternResult {
  const levels = text.split('/');
  const deviceIndex = levels.indexOf('{deviceId}');
  if (deviceIndex < 0 || levels.lastIndexOf('{deviceId}') !== deviceIndex) return { ok: false };
  for (const level of levels) {
    if (level.includes('#')) return { ok: false };
    if (level !== '+' && level.includes('+')) return { ok: false };
    if (level.length === 0) return { ok: false };
  }
  return { ok: true, pattern: { levels, deviceIndex } };
}

function matchPattern(pattern: TopicPattern, levels: readonly string[]): string | undefined {
  if (levels.length !== pattern.levels.length) return undefined;
  for (let i = 0; i < levels.length; i++) {
    const want = pattern.levels[i];
    if (i === pattern.deviceIndex || want === '+') continue;
    if (want !== levels[i]) return undefined;
  }
  return levels[pattern.deviceIndex];
}

export interface TopicRouterOptions {
  prefix: string;
  foreign: readonly { topic: string }[];
}

/** Builds the router once from config; routing a topic is then a split and a few comparisons. */
export function createTopicRouter(opts: TopicRouterOptions): (topic: string) => TopicRoute {
  const prefixLevels = opts.prefix.split('/');
  const n = prefixLevels.length;
  const foreign = opts.foreign.map((f) => {
    const parsed = parseTopicPattern(f.topic);
    if (!parsed.ok) throw new TypeError(`invalid foreign topic pattern ${f.topic}`);
    return parsed.pattern;
  });

  return (topic) => {
    const levels = topic.split('/');
    if (levels.length === n + 2 && prefixLevels.every((p, i) => levels[i] === p)) {
      const device = levels[n] as string;
      const leaf = levels[n + 1];
      if (leaf === 'telemetry') {
        return DEVICE_ID_RE.test(device)
          ? { kind: 'telemetry', deviceId: device }
          : { kind: 'badDevice', deviceLevel: device };
      }
      if (leaf === 'status' && DEVICE_ID_RE.test(device)) return { kind: 'status', deviceId: device };
    }
    for (const [rule, pattern] of foreign.entries()) {
      const device = matchPattern(pattern, levels);
      if (device === undefined) continue;
      return DEVICE_ID_RE.test(device)
        ? { kind: 'foreign', deviceId: device, rule }
        : { kind: 'badDevice', deviceLevel: device };
    }
    return { kind: 'other' };
  };
}
