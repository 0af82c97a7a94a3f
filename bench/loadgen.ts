/**
 * Load generator: C device connections over raw sockets (mqtt-packet, no MQTT.js per device, so the generator is not
 * the bottleneck), each keeping W contract-valid CBOR readings in flight at QoS q, for S seconds. Prints one JSON line:
 * readings acked per second and ack latency percentiles. QoS 0 has no acks: a subscriber connection counts what the
 * broker routed instead.
 *   node dist/bench/loadgen.js --port P --clients C --inflight W --qos 0|1|2 --seconds S [--count N (QoS 0)]
 *   node dist/bench/loadgen.js --port P --clients N --idle      (connect N devices, print a line, hold until killed)
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { encodeReading } from '../gateway/domain/wire.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    clients: { type: 'string', default: '1' },
    inflight: { type: 'string', default: '1' },
    qos: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '5' },
    idle: { type: 'boolean', default: false },
    /** QoS 0: readings to send in all (split over the clients), instead of flooding for --seconds. */
    count: { type: 'string' },
    prefix: { type: 'string', default: 'lg' },
    /** QoS 0: the subscriber's count is final once it has not moved for this long. */
    settle: { type: 'string', default: '2000' },
  },
});
const port = Number(values.port);
const clients = Number(values.clients);
const inflight = Number(values.inflight);
const qos = Number(values.qos) as 0 | 1 | 2;
const seconds = Number(values.seconds);

interface Conn {
  socket: Socket;
  send(p: Packet): void;
  onPacket(fn: (p: Packet) => void): void;
}

async function open(clientId: string): Promise<Conn> {
  const socket = connect(port, values.host);
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const parser = mqttPacket.parser();
  let handler: (p: Packet) => void = () => undefined;
  socket.on('data', (d) => parser.parse(d));
  const send = (p: Packet) => {
    socket.write(mqttPacket.generate(p));
  };
  const connack = new Promise<void>((resolve, reject) => {
    handler = (p) =>
      p.cmd === 'connack' && p.returnCode === 0
        ? resolve()
        : reject(new Error(`connect refused: ${JSON.stringify(p)}`));
  });
  parser.on('packet', (p: Packet) => handler(p));
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 600 });
  await connack;
  return { socket, send, onPacket: (fn) => (handler = fn) };
}

async function openAll(n: number, prefix: string): Promise<Conn[]> {
  const out: Conn[] = [];
  // Connect in waves so that the broker's accept queue is not the thing being measured.
  for (let i = 0; i < n; i += 200) {
    out.push(
      ...(await Promise.all(Array.from({ length: Math.min(200, n - i) }, (_, j) => open(`${prefix}-${i + j}`)))),
    );
  }
  return out;
}

if (values.idle) {
  const conns = await openAll(clients, `${values.prefix}-idle`);
  process.stdout.write(`${JSON.stringify({ event: 'connected', clients: conns.length })}\n`);
  await once(process, 'SIGTERM');
  for (const c of conns) c.socket.destroy();
  process.exit(0);
}

let counted = 0;
let lastCountedAt = 0;
let subscriber: Conn | undefined;
if (qos === 0) {
  subscriber = await open(`${values.prefix}-sub`);
  const subacked = new Promise<void>((resolve) => subscriber?.onPacket((p) => p.cmd === 'suback' && resolve()));
  subscriber.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sensors/+/telemetry', qos: 0 }] });
  await subacked;
  subscriber.onPacket((p) => {
    if (p.cmd === 'publish') {
      counted++;
      lastCountedAt = performance.now();
    }
  });
}

const conns = await openAll(clients, values.prefix);
const latencies: number[] = [];
let acked = 0;
let sent = 0;
const started = performance.now();
const end = started + seconds * 1000;

await Promise.all(
  conns.map(async (c, i) => {
    const device = `${values.prefix}-${i}`;
    const topic = `sensors/${device}/telemetry`;
    let seq = 0;
    let nextId = 1;
    const sentAt = new Map<number, number>();
    const body = () =>
      encodeReading(
        {
          v: 1,
          boot: 1,
          seq: seq++,
          ts: Date.now(),
          m: { temp_c: 21.5 + (seq % 7), rh_pct: 48, pres_hpa: 1013.2, wind_ms: 3.1 },
        },
        'cbor',
      );
    const publish = () => {
      const messageId = nextId;
      nextId = nextId === 65535 ? 1 : nextId + 1;
      sentAt.set(messageId, performance.now());
      sent++;
      c.send({ cmd: 'publish', topic, payload: body(), qos, messageId, retain: false, dup: false });
    };
    if (qos === 0) {
      // Flood, but respect the socket's backpressure; with --count, a fixed amount instead of a fixed time.
      const quota = values.count === undefined ? Infinity : Math.ceil(Number(values.count) / clients);
      let mine = 0;
      while (performance.now() < end && mine++ < quota) {
        sent++;
        const ok = c.socket.write(
          mqttPacket.generate({ cmd: 'publish', topic, payload: body(), qos: 0, retain: false, dup: false }),
        );
        if (!ok) await once(c.socket, 'drain');
        if (sent % 64 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      return;
    }
    await new Promise<void>((resolve) => {
      let open = 0;
      const done = (messageId: number) => {
        const t = sentAt.get(messageId);
        if (t === undefined) return;
        sentAt.delete(messageId);
        latencies.push(performance.now() - t);
        acked++;
        open--;
        if (performance.now() < end) {
          publish();
          open++;
        } else if (open === 0) resolve();
      };
      c.onPacket((p) => {
        if (p.cmd === 'puback' || p.cmd === 'pubcomp') done(p.messageId as number);
        else if (p.cmd === 'pubrec') c.send({ cmd: 'pubrel', messageId: p.messageId as number });
      });
      for (let k = 0; k < inflight; k++) {
        publish();
        open++;
      }
    });
  }),
);
let elapsed = (performance.now() - started) / 1000;
if (subscriber) {
  // Let what is already on its way arrive: wait until the count stops moving; the rate is over the time to the last.
  let last = -1;
  while (counted !== last) {
    last = counted;
    await new Promise((resolve) => setTimeout(resolve, Number(values.settle)));
  }
  elapsed = (lastCountedAt - started) / 1000;
}
latencies.sort((a, b) => a - b);
const pct = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? null;
const delivered = qos === 0 ? counted : acked;
process.stdout.write(
  `${JSON.stringify({ qos, clients, inflight, seconds: elapsed, sent, acked: delivered, rate: delivered / elapsed, p50: pct(0.5), p99: pct(0.99), max: latencies.at(-1) ?? null })}\n`,
);
for (const c of [...conns, ...(subscriber ? [subscriber] : [])]) c.socket.destroy();
