/**
 * Salted password hashes with scrypt from node:crypto, in a self-describing form (`scrypt$N$r$p$salt$hash`, base64), so
 * that the cost can be raised later without breaking the hashes already in a users file.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** 2^14 × 8 × 128 bytes = 16 MiB per hash: tens of milliseconds on a Raspberry Pi, paid once per connect. */
const COST = { N: 16_384, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;

function derive(password: string, salt: Buffer, cost: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { ...cost, maxmem: 256 * cost.N * cost.r };
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, COST);
  return `scrypt$${COST.N}$${COST.r}$${COST.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const HASH_RE = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

/** Whether `hash` has the form hashPassword writes, with a cost this process can compute. */
export function isPasswordHash(hash: string): boolean {
  const m = HASH_RE.exec(hash);
  if (!m) return false;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return N >= 2 && (N & (N - 1)) === 0 && N <= 1 << 20 && r >= 1 && r <= 32 && p >= 1 && p <= 16;
}

export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = HASH_RE.exec(hash);
  if (!m || !isPasswordHash(hash)) return false;
  const expected = Buffer.from(m[5] as string, 'base64');
  const key = await derive(password, Buffer.from(m[4] as string, 'base64'), {
    N: Number(m[1]),
    r: Number(m[2]),
    p: Number(m[3]),
  });
  return key.length === expected.length && timingSafeEqual(key, expected);
}
