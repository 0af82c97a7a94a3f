/**
 * API tokens for the HTTP API: one `name:scope:sha256` line per token. A token is 32 random bytes, shown once when it
 * is made; only its SHA-256 is kept (a random 256-bit secret needs no salt or slow hash: nothing to guess from).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { GatewayError } from '../domain/errors.js';
import { writePrivateFile } from './private-file.js';

export const SCOPES = ['read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface TokenEntry {
  name: string;
  scope: Scope;
  sha256: string;
}

export const tokenHash = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

export function parseTokens(text: string): { tokens: TokenEntry[]; problems: string[] } {
  const tokens: TokenEntry[] = [];
  const problems: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [name, scope, sha256, ...rest] = line.split(':');
    if (rest.length > 0 || !name || !sha256 || !/^[0-9a-f]{64}$/.test(sha256)) {
      problems.push(`line ${i + 1}: expected name:scope:sha256 (use gateway token add)`);
    } else if (!(SCOPES as readonly string[]).includes(scope ?? '')) {
      problems.push(`line ${i + 1}: scope must be one of ${SCOPES.join(', ')}`);
    } else if (tokens.some((t) => t.name === name)) {
      problems.push(`line ${i + 1}: ${name} is listed twice`);
    } else {
      tokens.push({ name, scope: scope as Scope, sha256 });
    }
  }
  return { tokens, problems };
}

export async function readTokensFile(path: string, missingOk = false): Promise<TokenEntry[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (missingOk && (err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new GatewayError('GW_AUTH_USERS_INVALID', `cannot read the tokens file ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const { tokens, problems } = parseTokens(text);
  if (problems.length > 0) throw new GatewayError('GW_AUTH_USERS_INVALID', `${path}:\n  - ${problems.join('\n  - ')}`);
  return tokens;
}

async function writeTokensFile(path: string, tokens: readonly TokenEntry[]): Promise<void> {
  const lines = tokens.map((t) => `${t.name}:${t.scope}:${t.sha256}`);
  await writePrivateFile(
    path,
    `# sensorgate API tokens: name:scope:sha256, managed with gateway token\n${lines.join('\n')}\n`,
  );
}

/** Makes a token (replacing one of the same name) and returns it: the only time it is seen. */
export async function addToken(path: string, name: string, scope: string): Promise<string> {
  if (!(SCOPES as readonly string[]).includes(scope)) {
    throw new GatewayError('GW_AUTH_USERS_INVALID', `scope must be one of ${SCOPES.join(', ')}`);
  }
  if (!/^[^:\s]{1,128}$/.test(name)) {
    throw new GatewayError('GW_AUTH_USERS_INVALID', 'a token name is 1 to 128 characters, no colon or white space');
  }
  const token = randomBytes(32).toString('base64url');
  const tokens = (await readTokensFile(path, true)).filter((t) => t.name !== name);
  await writeTokensFile(path, [...tokens, { name, scope: scope as Scope, sha256: tokenHash(token) }]);
  return token;
}

export async function removeToken(path: string, name: string): Promise<boolean> {
  const tokens = await readTokensFile(path);
  const kept = tokens.filter((t) => t.name !== name);
  if (kept.length === tokens.length) return false;
  await writeTokensFile(path, kept);
  return true;
}
