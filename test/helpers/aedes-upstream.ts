import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { Aedes, type AedesOptions } from 'aedes';
import { onTestFinished } from 'vitest';

export interface AedesUpstream {
  aedes: Aedes;
  url: string;
}

/**
 * A second Aedes on port 0 as the upstream broker, for faults Mosquitto cannot be made to show: withheld acks, a socket
 * killed at an exact step of the handshake. Hooks are passed straight to Aedes.
 */
export async function startAedesUpstream(
  hooks: Pick<AedesOptions, 'authorizePublish' | 'authenticate'> = {},
): Promise<AedesUpstream> {
  const aedes = await Aedes.createBroker(hooks);
  const server = createServer((socket) => aedes.handle(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    await Promise.all([new Promise((r) => server.close(r)), new Promise<void>((r) => aedes.close(() => r()))]);
  });
  return { aedes, url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
