/**
 * Authentication and authorisation from the users file and the role grants in the config. Implements the broker's
 * ClientAccess; reload() re-reads the users file (SIGHUP) without touching connected clients.
 */
import { GatewayError } from '../domain/errors.js';
import type { Logger } from '../shared/log.js';
import { covers, expand } from './filters.js';
import { hashPassword, verifyPassword } from './password.js';
import { readTokensFile, tokenHash, type Scope, type TokenEntry } from './tokens-file.js';
import { readUsersFile, type Role, type User } from './users-file.js';

export interface RoleGrants {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

export interface AccessOptions {
  readonly usersFile: string | null;
  /** Bearer tokens of the HTTP API; null: the API is open (it then stays on loopback unless anonymous is allowed). */
  readonly tokensFile: string | null;
  /** true: anonymous clients allowed; false: never; null: only while no users file is configured. */
  readonly allowAnonymous: boolean | null;
  readonly anonymousRole: Role;
  readonly roles: Readonly<Record<Role, RoleGrants>>;
  /** Replaces `{prefix}` in the grants: the telemetry topic prefix. */
  readonly prefix: string;
}

export interface Grant {
  user: string | null;
  role: Role;
  mayPublish(topic: string): boolean;
  maySubscribe(filter: string): boolean;
}

export type AuthResult = { ok: true; grant: Grant } | { ok: false; returnCode: 2 | 4 | 5; reason: string };

/** Whether anonymous clients may connect under these options. */
export function anonymousAllowed(o: Pick<AccessOptions, 'usersFile' | 'allowAnonymous'>): boolean {
  return o.allowAnonymous ?? o.usersFile === null;
}

async function loadUsers(path: string): Promise<Map<string, User>> {
  let parsed: Awaited<ReturnType<typeof readUsersFile>>;
  try {
    parsed = await readUsersFile(path);
  } catch (err) {
    throw new GatewayError('GW_AUTH_USERS_INVALID', `cannot read the users file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (parsed.problems.length > 0) {
    throw new GatewayError('GW_AUTH_USERS_INVALID', `users file ${path}:\n  - ${parsed.problems.join('\n  - ')}`);
  }
  return parsed.users;
}

async function loadTokens(path: string | null): Promise<Map<string, TokenEntry>> {
  return new Map((path === null ? [] : await readTokensFile(path)).map((t) => [t.sha256, t]));
}

export class Access {
  readonly #options: AccessOptions;
  readonly #log: Logger;
  #users: Map<string, User>;
  #tokens: Map<string, TokenEntry>;
  /** Checked for an unknown user too, so that the answer takes as long as for a known one. */
  readonly #decoy: string;

  private constructor(
    options: AccessOptions,
    log: Logger,
    users: Map<string, User>,
    tokens: Map<string, TokenEntry>,
    decoy: string,
  ) {
    this.#options = options;
    this.#log = log;
    this.#users = users;
    this.#tokens = tokens;
    this.#decoy = decoy;
  }

  static async open(options: AccessOptions, log: Logger): Promise<Access> {
    const users = options.usersFile === null ? new Map<string, User>() : await loadUsers(options.usersFile);
    if (options.usersFile !== null) log.info({ usersFile: options.usersFile, users: users.size }, 'users loaded');
    const tokens = await loadTokens(options.tokensFile);
    if (options.tokensFile !== null) log.info({ tokensFile: options.tokensFile, tokens: tokens.size }, 'tokens loaded');
    return new Access(options, log, users, tokens, await hashPassword('decoy'));
  }

  /** The scope an HTTP request's Authorization header grants: null for none; everything while there are no tokens. */
  scopeOf(authorization: string | undefined): Scope | null {
    if (this.#options.tokensFile === null) return 'admin';
    const m = /^Bearer ([A-Za-z0-9_-]{1,128})$/.exec(authorization ?? '');
    return m ? (this.#tokens.get(tokenHash(m[1] as string))?.scope ?? null) : null;
  }

  /**
   * Re-reads the users and tokens files; on a problem keeps what it had and logs why. New rules apply to new
   * connections and requests.
   */
  async reload(): Promise<void> {
    const { usersFile, tokensFile } = this.#options;
    try {
      const users = usersFile === null ? this.#users : await loadUsers(usersFile);
      const tokens = await loadTokens(tokensFile);
      this.#users = users;
      this.#tokens = tokens;
      this.#log.info({ users: this.#users.size, tokens: this.#tokens.size }, 'users and tokens reloaded');
    } catch (err) {
      this.#log.error({ err }, 'not reloaded: keeping the users and tokens loaded before');
    }
  }

  async authenticate(req: {
    clientId: string;
    username: string | undefined;
    password: Buffer | undefined;
    certName: string | null;
  }): Promise<AuthResult> {
    const { clientId, username, certName } = req;
    const holder = this.#users.get(clientId);
    if (certName !== null) return this.#byCertificate(certName, clientId, username, holder);
    if (username === undefined || this.#options.usersFile === null) {
      if (!anonymousAllowed(this.#options))
        return { ok: false, returnCode: 5, reason: 'anonymous clients not allowed' };
      if (holder?.role === 'device') return takeover(clientId);
      return { ok: true, grant: this.#grant(null, this.#options.anonymousRole, clientId) };
    }
    const user = this.#users.get(username);
    const password = req.password?.toString('utf8') ?? '';
    const matches = await verifyPassword(password, user?.hash ?? this.#decoy);
    if (!user || !matches) return { ok: false, returnCode: 4, reason: 'bad user name or password' };
    if (user.role === 'device' && clientId !== user.name) {
      return { ok: false, returnCode: 2, reason: `device ${user.name} must connect with client id ${user.name}` };
    }
    if (holder?.role === 'device' && holder.name !== user.name) return takeover(clientId);
    return { ok: true, grant: this.#grant(user.name, user.role, clientId) };
  }

  /**
   * A verified client certificate is the identity: its CN is the user name, with the role of that user in the users
   * file, or `device` when it has none there (the CA vouches for the device). No password is needed.
   */
  #byCertificate(name: string, clientId: string, username: string | undefined, holder: User | undefined): AuthResult {
    if (username !== undefined && username !== name) {
      return { ok: false, returnCode: 4, reason: `the certificate names ${name}, not ${username}` };
    }
    const role = this.#users.get(name)?.role ?? 'device';
    if (role === 'device' && clientId !== name) {
      return { ok: false, returnCode: 2, reason: `device ${name} must connect with client id ${name}` };
    }
    if (holder?.role === 'device' && holder.name !== name) return takeover(clientId);
    return { ok: true, grant: this.#grant(name, role, clientId) };
  }

  #grant(user: string | null, role: Role, clientId: string): Grant {
    const identity = { username: user ?? clientId, clientId };
    const fill = (patterns: readonly string[]) =>
      patterns
        .map((p) => expand(p.replaceAll('{prefix}', this.#options.prefix), identity))
        .filter((p): p is string => p !== null);
    const grants = this.#options.roles[role];
    const publish = fill(grants.publish);
    const subscribe = fill(grants.subscribe);
    return {
      user,
      role,
      mayPublish: (topic) => publish.some((g) => covers(g, topic)),
      maySubscribe: (filter) => subscribe.some((g) => covers(g, filter)),
    };
  }
}

function takeover(clientId: string): AuthResult {
  return { ok: false, returnCode: 2, reason: `client id ${clientId} belongs to a device user` };
}
