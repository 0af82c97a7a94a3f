/** Bare Aedes with its in-memory persistence on a TCP port: the baseline the gateway is compared with. */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';

const aedes = await Aedes.createBroker();
const server = createServer({ noDelay: true }, (socket) => aedes.handle(socket));
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`${JSON.stringify({ event: 'ready', mqtt: { port: (server.address() as AddressInfo).port } })}\n`);
process.once('SIGTERM', () => {
  server.close();
  aedes.close(() => process.exit(0));
});
