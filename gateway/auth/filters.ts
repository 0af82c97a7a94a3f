/** MQTT topic filters as permissions: does a granted filter match a topic, and does it cover a requested filter. */

/**
 * Whether every topic the filter `requested` matches is also matched by `granted`. Level by level: `#` in the grant
 * covers the rest; `+` covers any one level (a `+` asked for included); a literal covers only itself. A topic is a
 * filter without wildcards, so this is also plain matching. As in MQTT [MQTT-4.7.2-1], a grant that starts with a
 * wildcard does not reach topics that start with `$`.
 */
export function covers(granted: string, requested: string): boolean {
  if (requested.startsWith('$') && !granted.startsWith('$')) return false;
  const g = granted.split('/');
  const r = requested.split('/');
  for (let i = 0; i < g.length; i++) {
    const level = g[i];
    if (level === '#') return true;
    const want = r[i];
    if (want === undefined || want === '#') return false;
    if (level === '+') continue;
    if (level !== want) return false;
  }
  return r.length === g.length;
}

/** `{username}` and `{clientid}` in a grant, replaced; an identity containing a wildcard or `/` gets no grant from it. */
export function expand(pattern: string, identity: { username: string; clientId: string }): string | null {
  let unsafe = false;
  const out = pattern.replace(/\{(username|clientid)\}/g, (_, key: string) => {
    const value = key === 'username' ? identity.username : identity.clientId;
    if (value === '' || /[+#/]/.test(value)) unsafe = true;
    return value;
  });
  return unsafe ? null : out;
}
