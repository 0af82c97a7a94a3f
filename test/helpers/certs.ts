import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from './temp-dir.js';

export interface TestCerts {
  ca: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate and key per CN asked for, signed by the same CA. */
  client: Record<string, { cert: string; key: string }>;
  /** A client certificate from another CA, which the gateway must not trust. */
  stranger: { cert: string; key: string };
}

const openssl = (cwd: string, ...args: string[]) => execFileSync('openssl', args, { cwd, stdio: 'pipe' });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function selfSigned(dir: string, name: string): void {
  openssl(
    dir,
    'req',
    '-x509',
    ...EC,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-subj',
    `/CN=${name}`,
    '-days',
    '2',
  );
}

function signed(dir: string, ca: string, name: string, ext: string): void {
  openssl(dir, 'req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    '-extfile',
    ext,
  );
}

/** A CA, a server certificate for 127.0.0.1 and client certificates, made with Debian's openssl in a temp dir. */
export async function makeCerts(clients: string[]): Promise<TestCerts> {
  const dir = await tempDir();
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  selfSigned(dir, 'test-ca');
  signed(dir, 'test-ca', 'server', 'server.ext');
  for (const cn of clients) signed(dir, 'test-ca', cn, 'client.ext');
  selfSigned(dir, 'other-ca');
  signed(dir, 'other-ca', 'stranger', 'client.ext');
  const pair = (name: string) => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });
  return {
    ca: join(dir, 'test-ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    client: Object.fromEntries(clients.map((cn) => [cn, pair(cn)])),
    stranger: pair('stranger'),
  };
}
