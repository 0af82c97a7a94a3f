/**
 * The users file: one `name:role:hash` line per user (`#` comments and blank lines allowed), like Mosquitto's
 * password_file with a role added. Written with mode 0600 by `gateway passwd`, read at start and on SIGHUP.
 */
import { readFile } from 'node:fs/promises';
import { DEVICE_ID_RE } from '../domain/topics.js';
import { isPasswordHash } from './password.js';
import { writePrivateFile } from './private-file.js';

export const ROLES = ['device', 'reader', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface User {
  name: string;
  role: Role;
  hash: string;
}

export interface ParsedUsers {
  users: Map<string, User>;
  /** One line per problem, with its line number; a file with problems is not used. */
  problems: string[];
}

const isRole = (s: string): s is Role => (ROLES as readonly string[]).includes(s);

/** A device user's name is its device id, so it follows the device-id rule; other names only avoid `:`. */
export function nameProblem(name: string, role: Role): string | null {
  if (role === 'device') return DEVICE_ID_RE.test(name) ? null : `a device name must match ${DEVICE_ID_RE.source}`;
  return /^[^:\s]{1,128}$/.test(name) ? null : 'a name is 1 to 128 characters, no colon or white space';
}

export function parseUsers(text: string): ParsedUsers {
  const users = new Map<string, User>();
  const problems: string[] = [];
  const problem = (line: string): string | null => {
    const fields = line.split(':');
    if (fields.length !== 3) return 'expected name:role:hash';
    const [name, role, hash] = fields as [string, string, string];
    if (!isRole(role)) return `role must be one of ${ROLES.join(', ')}`;
    const bad = nameProblem(name, role);
    if (bad) return bad;
    if (!isPasswordHash(hash)) return 'not a password hash (use gateway passwd add)';
    if (users.has(name)) return `${name} is listed twice`;
    users.set(name, { name, role, hash });
    return null;
  };
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const bad = problem(line);
    if (bad) problems.push(`line ${i + 1}: ${bad}`);
  }
  return { users, problems };
}

export function formatUsers(users: Iterable<User>): string {
  const lines = [...users].sort((a, b) => a.name.localeCompare(b.name)).map((u) => `${u.name}:${u.role}:${u.hash}`);
  return `# sensorgate users: name:role:hash, managed with gateway passwd\n${lines.join('\n')}\n`;
}

export async function readUsersFile(path: string): Promise<ParsedUsers> {
  return parseUsers(await readFile(path, 'utf8'));
}

export async function writeUsersFile(path: string, users: Iterable<User>): Promise<void> {
  await writePrivateFile(path, formatUsers(users));
}
