import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { covers, expand } from '../../gateway/auth/filters.js';
import { hashPassword, isPasswordHash, verifyPassword } from '../../gateway/auth/password.js';
import { formatUsers, parseUsers } from '../../gateway/auth/users-file.js';

/** The MQTT matching rules written as a regular expression, as a reference for `covers` on plain topics. */
function reference(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && !filter.startsWith('$')) return false;
  const levels = filter.split('/');
  const multi = levels.at(-1) === '#';
  const fixed = (multi ? levels.slice(0, -1) : levels).map((l) => (l === '+' ? '[^/]*' : l.replace(/[.$^]/g, '\\$&')));
  // `a/#` also matches `a` itself [MQTT-4.7.1-2]; `#` alone matches everything.
  const source = !multi ? fixed.join('/') : fixed.length === 0 ? '.*' : `${fixed.join('/')}(?:/.*)?`;
  return new RegExp(`^${source}$`).test(topic);
}

const level = fc.constantFrom('a', 'b', 'sensors', 'st-1', '', '$SYS');
const topic = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/'));
const filter = fc
  .tuple(fc.array(fc.oneof(level, fc.constant('+')), { minLength: 0, maxLength: 4 }), fc.boolean())
  .filter(([l, hash]) => l.length > 0 || hash)
  .map(([l, hash]) => [...l, ...(hash ? ['#'] : [])].join('/'));

describe('topic filter grants', () => {
  it('match a topic exactly as MQTT matching does', () => {
    fc.assert(fc.property(filter, topic, (f, t) => covers(f, t) === reference(f, t)));
  });

  it('cover a requested filter only when every topic it matches is granted', () => {
    fc.assert(
      fc.property(filter, filter, topic, (granted, requested, t) => {
        if (covers(granted, requested) && reference(requested, t)) expect(reference(granted, t)).toBe(true);
      }),
    );
    expect(covers('sensors/#', 'sensors/+/telemetry')).toBe(true);
    expect(covers('sensors/st-1/#', 'sensors/#')).toBe(false);
    expect(covers('sensors/+/telemetry', 'sensors/#')).toBe(false);
    expect(covers('#', '$SYS/#')).toBe(false);
  });

  it('fill in {username} and {clientid}, and give nothing for an identity with a wildcard or a slash', () => {
    expect(expand('sensors/{username}/#', { username: 'st-1', clientId: 'c' })).toBe('sensors/st-1/#');
    expect(expand('c/{clientid}', { username: 'u', clientId: 'c-9' })).toBe('c/c-9');
    for (const bad of ['#', '+', 'a/b', ''])
      expect(expand('s/{username}/#', { username: bad, clientId: 'c' })).toBe(null);
  });
});

describe('users file', () => {
  it('hashes with a salt and verifies only the right password', async () => {
    const a = await hashPassword('secret');
    const b = await hashPassword('secret');
    expect(a).not.toBe(b);
    expect(isPasswordHash(a)).toBe(true);
    expect(await verifyPassword('secret', a)).toBe(true);
    expect(await verifyPassword('Secret', a)).toBe(false);
    expect(await verifyPassword('secret', 'plain')).toBe(false);
  });

  it('round-trips, and lists every problem with its line', async () => {
    const hash = await hashPassword('x');
    const users = [
      { name: 'st-1', role: 'device' as const, hash },
      { name: 'ops@example', role: 'admin' as const, hash },
    ];
    expect([...parseUsers(formatUsers(users)).users.values()]).toEqual(
      users.sort((x, y) => x.name.localeCompare(y.name)),
    );
    const { problems, users: parsed } = parseUsers(
      ['# comment', '', `st-1:device:${hash}`, 'st 2:device:x', 'u:king:x', `st-1:device:${hash}`, 'a:b'].join('\n'),
    );
    expect(parsed.size).toBe(1);
    expect(problems).toEqual([
      expect.stringMatching(/^line 4: a device name must match/),
      expect.stringMatching(/^line 5: role must be one of/),
      'line 6: st-1 is listed twice',
      'line 7: expected name:role:hash',
    ]);
  });
});
