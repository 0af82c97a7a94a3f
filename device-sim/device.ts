/**
 * One simulated weather station: its own MQTT connection and client id, a boot counter that survives restarts, seq
 * from 0 at each boot, QoS 1/2 readings kept until acked (a bounded buffer while offline), QoS 0 fire and forget.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { encodeReading, type DeviceEncoding, type Reading } from '../gateway/domain/wire.js';
import type { FaultSpec } from './faults.js';
import type { LedgerWriter } from './ledger.js';
import type { Rng } from './random.js';
import { createStation, initialWeather, stepWeather, type Station, type WeatherState } from './weather.js';

export interface DeviceOptions {
  id: string;
  url: string;
  qos: 0 | 1 | 2;
  encoding: DeviceEncoding;
  intervalMs: number;
  /** Stop producing after this many readings (per device); undefined: until stopped. */
  count?: number | undefined;
  topicPrefix: string;
  maxBuffer: number;
  username?: string | undefined;
  password?: string | undefined;
  tls?: DeviceTls | undefined;
  faults: FaultSpec;
  ledger: LedgerWriter;
  rng: Rng;
  now(): number;
}

/** A CA to trust and a client certificate and key, as MQTT.js takes them for mqtts:// and wss://. */
export interface DeviceTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export interface DeviceStats {
  produced: number;
  sent: number;
  acked: number;
  inFlight: number;
  buffered: number;
  dropped: number;
  reboots: number;
  resent: number;
  connected: boolean;
}

const RECENT_ACKED = 64;

export class SimDevice {
  readonly #o: DeviceOptions;
  readonly #station: Station;
  #weather: WeatherState;
  #client: MqttClient | null = null;
  #boot = 0;
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #rebootTimer: NodeJS.Timeout | undefined;
  #lastStep: number;
  /** QoS 1/2 readings waiting for a connection, in seq order; `sent` once they have been on the wire. */
  readonly #queue: { reading: Reading; sent: boolean }[] = [];
  #inFlight = 0;
  /** Recently acked readings, for the duplicate re-send fault. */
  readonly #recentAcked: { boot: number; seq: number; body: Buffer }[] = [];
  readonly stats: DeviceStats = {
    produced: 0,
    sent: 0,
    acked: 0,
    inFlight: 0,
    buffered: 0,
    dropped: 0,
    reboots: 0,
    resent: 0,
    connected: false,
  };

  constructor(opts: DeviceOptions) {
    this.#o = opts;
    this.#station = createStation(opts.rng.fork('station'));
    this.#weather = initialWeather(opts.rng);
    this.#lastStep = opts.now();
  }

  get done(): boolean {
    return this.#o.count !== undefined && this.stats.produced >= this.#o.count;
  }

  /** Readings sent and not yet acked, plus those waiting for a connection. */
  get unacked(): number {
    return this.#inFlight + this.#queue.length;
  }

  start(): void {
    this.#boot = this.#o.ledger.nextBoot(this.#o.id);
    this.#seq = 0;
    this.#connect();
    // Spread the fleet's publishes over the interval instead of having every device fire at once.
    const offset = this.#o.rng.next() * this.#o.intervalMs;
    this.#timer = setTimeout(() => {
      this.#tick();
      this.#timer = setInterval(() => this.#tick(), this.#o.intervalMs);
    }, offset);
    if (this.#o.faults.reboot > 0) {
      this.#rebootTimer = setInterval(() => {
        if (this.#o.rng.next() < this.#o.faults.reboot) this.reboot();
      }, 1000);
    }
  }

  /** Stops producing readings and stops injecting reboots; the connection stays up to collect outstanding acks. */
  quiesce(): void {
    clearTimeout(this.#timer);
    clearInterval(this.#timer);
    clearInterval(this.#rebootTimer);
  }

  async stop(): Promise<void> {
    this.quiesce();
    const client = this.#client;
    this.#client = null;
    if (client) await client.endAsync(true);
    this.stats.connected = false;
  }

  /** A crash and restart: everything unacked in RAM is gone, the boot counter moves on, seq starts again at 0. */
  reboot(): void {
    this.stats.reboots++;
    const old = this.#client;
    this.#client = null;
    old?.end(true);
    this.#queue.length = 0;
    this.#inFlight = 0;
    this.#syncStats();
    this.#boot = this.#o.ledger.nextBoot(this.#o.id);
    this.#seq = 0;
    this.#connect();
  }

  #connect(): void {
    const o = this.#o;
    const status = `${o.topicPrefix}/${o.id}/status`;
    const client = mqtt.connect(o.url, {
      clientId: o.id,
      clean: true,
      keepalive: 5,
      connectTimeout: 3000,
      reconnectPeriod: 200 + Math.floor(o.rng.next() * 400),
      queueQoSZero: false,
      will: { topic: status, payload: Buffer.from('offline'), qos: 1, retain: true },
      ...(o.username === undefined ? {} : { username: o.username }),
      ...(o.password === undefined ? {} : { password: o.password }),
      ...o.tls,
    });
    this.#client = client;
    client.on('connect', () => {
      if (this.#client !== client) return;
      this.stats.connected = true;
      client.publish(status, 'online', { qos: 1, retain: true });
      this.#flush();
    });
    client.on('close', () => {
      if (this.#client === client) this.stats.connected = false;
    });
    client.on('error', () => undefined);
  }

  #tick(): void {
    if (this.done) {
      this.quiesce();
      return;
    }
    const now = this.#o.now();
    const step = stepWeather(
      this.#station,
      this.#weather,
      now,
      now - this.#lastStep || this.#o.intervalMs,
      this.#o.rng,
    );
    this.#weather = step.state;
    this.#lastStep = now;
    const reading: Reading = { v: 1, boot: this.#boot, seq: this.#seq++, ts: now, m: step.m };
    this.stats.produced++;
    const client = this.#client;
    if (this.#o.qos === 0) {
      if (client?.connected) this.#send(client, reading);
      else this.#drop(reading);
    } else {
      this.#queue.push({ reading, sent: false });
      if (this.#queue.length + this.#inFlight > this.#o.maxBuffer) {
        const oldest = this.#queue.shift() as { reading: Reading; sent: boolean };
        if (oldest.sent) this.stats.dropped++;
        else this.#drop(oldest.reading);
      }
      if (client?.connected) this.#flush();
    }
    if (
      this.#o.faults.dup > 0 &&
      client?.connected &&
      this.#recentAcked.length > 0 &&
      this.#o.rng.next() < this.#o.faults.dup
    ) {
      this.#resend(client);
    }
    this.#syncStats();
  }

  #drop(r: Reading): void {
    this.stats.dropped++;
    this.#o.ledger.dropped(this.#o.id, r.boot, r.seq);
  }

  #flush(): void {
    const client = this.#client;
    while (client?.connected && this.#queue.length > 0) {
      const next = this.#queue.shift() as { reading: Reading; sent: boolean };
      this.#send(client, next.reading, next.sent);
    }
    this.#syncStats();
  }

  #send(client: MqttClient, r: Reading, resend = false): void {
    const o = this.#o;
    const body = encodeReading(r, o.encoding);
    if (!resend) {
      o.ledger.sent(o.id, r.boot, r.seq, o.qos, o.now());
      this.stats.sent++;
    }
    if (o.qos === 0) {
      client.publish(`${o.topicPrefix}/${o.id}/telemetry`, body, { qos: 0 });
      return;
    }
    this.#inFlight++;
    client.publish(`${o.topicPrefix}/${o.id}/telemetry`, body, { qos: o.qos }, (err) => {
      // After a reboot the old client's callbacks report errors: those readings died with the RAM.
      if (this.#client !== client) return;
      this.#inFlight--;
      if (err) {
        // MQTT.js gave up on it (the connection closed while it was queued behind a resend): keep it for the next
        // connection, in seq order. If it did reach the gateway, the gateway drops the copy as a duplicate.
        const at = this.#queue.findIndex((q) => q.reading.seq > r.seq);
        this.#queue.splice(at < 0 ? this.#queue.length : at, 0, { reading: r, sent: true });
        this.#syncStats();
        return;
      }
      this.stats.acked++;
      o.ledger.acked(o.id, r.boot, r.seq);
      this.#recentAcked.push({ boot: r.boot, seq: r.seq, body });
      if (this.#recentAcked.length > RECENT_ACKED) this.#recentAcked.shift();
      this.#syncStats();
    });
  }

  #resend(client: MqttClient): void {
    const o = this.#o;
    const old = this.#recentAcked[Math.floor(o.rng.next() * this.#recentAcked.length)];
    if (!old) return;
    this.stats.resent++;
    // In the ledger once the gateway acked it again: a QoS 0 copy, or one sent into a dead connection, may never
    // arrive, and verify compares the ledger's count with the duplicates the gateway counted.
    client.publish(`${o.topicPrefix}/${o.id}/telemetry`, old.body, { qos: o.qos }, (err) => {
      if (!err && o.qos > 0) o.ledger.resent(o.id, old.boot, old.seq);
    });
  }

  #syncStats(): void {
    this.stats.inFlight = this.#inFlight;
    this.stats.buffered = this.#queue.length;
  }
}
