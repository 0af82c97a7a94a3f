/** `gateway passwd add|remove|list`: edits the users file (users-file.ts), as mosquitto_passwd does its password file. */
import { GatewayError } from '../domain/errors.js';
import { hashPassword } from './password.js';
import {
  nameProblem,
  readUsersFile,
  ROLES,
  writeUsersFile,
  type ParsedUsers,
  type Role,
  type User,
} from './users-file.js';

async function load(path: string, missingOk: boolean): Promise<Map<string, User>> {
  let parsed: ParsedUsers;
  try {
    parsed = await readUsersFile(path);
  } catch (err) {
    if (missingOk && (err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new GatewayError('GW_AUTH_USERS_INVALID', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (parsed.problems.length > 0) {
    throw new GatewayError('GW_AUTH_USERS_INVALID', `${path}:\n  - ${parsed.problems.join('\n  - ')}`);
  }
  return parsed.users;
}

/** Adds a user, or replaces the password and role of an existing one. Creates the file if needed. */
export async function addUser(path: string, name: string, role: string, password: string): Promise<void> {
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new GatewayError('GW_AUTH_USERS_INVALID', `role must be one of ${ROLES.join(', ')}`);
  }
  const bad = nameProblem(name, role as Role);
  if (bad) throw new GatewayError('GW_AUTH_USERS_INVALID', `${name}: ${bad}`);
  if (password.length === 0) throw new GatewayError('GW_AUTH_USERS_INVALID', 'the password is empty');
  const users = await load(path, true);
  users.set(name, { name, role: role as Role, hash: await hashPassword(password) });
  await writeUsersFile(path, users.values());
}

/** Removes a user; false when there was none of that name. */
export async function removeUser(path: string, name: string): Promise<boolean> {
  const users = await load(path, false);
  if (!users.delete(name)) return false;
  await writeUsersFile(path, users.values());
  return true;
}

export async function listUsers(path: string): Promise<{ name: string; role: Role }[]> {
  return [...(await load(path, false)).values()].map(({ name, role }) => ({ name, role }));
}
