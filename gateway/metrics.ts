/** Prometheus metrics. One registry per gateway, so that several gateways (tests) can live in one process. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AccessMetrics } from './broker/access.js';
import type { BrokerMetrics } from './broker/broker.js';
import type { AckMetrics } from './broker/hooks.js';
import { COUNTER_NAMES, type Outcome, type Qos } from './domain/model.js';
import type { ForwarderMetrics } from './forward/forwarder.js';
import type { IngestMetrics } from './ingest/ingest.js';
import type { WriteInfo } from './shared/group-commit.js';
import type { RetentionMetrics } from './store/retention.js';

export interface Metrics
  extends IngestMetrics,
    AckMetrics,
    AccessMetrics,
    BrokerMetrics,
    ForwarderMetrics,
    RetentionMetrics {
  readonly registry: Registry;
  /** Every LevelDB write of the shared group commit. */
  storeWrite(info: WriteInfo): void;
}

export interface MetricSources {
  backlog(): { readings: number; bytes: number; full: boolean };
  diskFreeBytes(): number;
  /** Bytes of unreadable files moved aside when the store was repaired at start-up (0 when it was not). */
  repairLostBytes(): number;
  /** Outbox entries removed because the reading they named was gone. */
  outboxDangling(): number;
  storeBytes(): Promise<number>;
  /** Each station as the page shows it (docs/ui.md). */
  stations(): Promise<StationSample[]>;
}

export interface StationSample {
  id: string;
  /** Seconds since its last reading arrived. */
  lastSeenAgeSeconds: number;
  silent: boolean;
  /** Its newest batt_v, or null when it sends none. */
  batteryVolts: number | null;
  lowBattery: boolean;
}

/** Seconds, for the write and ack latencies: from a tenth of a millisecond (an unsynced write) to a second. */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

export function createMetrics(sources: MetricSources): Metrics {
  const registry = new Registry();
  const outcomes = new Counter({
    name: 'sensorgate_readings_total',
    help: `Telemetry messages by outcome (${COUNTER_NAMES.filter((c) => c !== 'missing').join(', ')}) and device QoS`,
    labelNames: ['outcome', 'qos'] as const,
    registers: [registry],
  });
  const missing = new Gauge({
    name: 'sensorgate_readings_missing',
    help: 'Sequence numbers skipped by devices and not (yet) received, by the QoS of the reading that revealed the gap',
    labelNames: ['qos'] as const,
    registers: [registry],
  });
  const batchSize = new Histogram({
    name: 'sensorgate_commit_batch_size',
    help: 'Entries per LevelDB write (readings, upstream session changes and broker state together)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
    registers: [registry],
  });
  const writeSeconds = new Histogram({
    name: 'sensorgate_commit_write_seconds',
    help: 'Time to write one LevelDB batch; sync="true" only for batches written with fsync, and those include it',
    labelNames: ['sync'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const fsyncs = new Counter({
    name: 'sensorgate_store_fsyncs_total',
    help: 'Synced LevelDB writes (one fsync of its log each), whoever asked: ingest, forwarder, broker state',
    registers: [registry],
  });
  const ackSeconds = new Histogram({
    name: 'sensorgate_ack_latency_seconds',
    help: 'From PUBLISH received to the ack being released (QoS 1 PUBACK, QoS 2 PUBREC; QoS 0: accepted)',
    labelNames: ['qos'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const bootResets = new Counter({
    name: 'sensorgate_boot_resets_total',
    help: 'Devices whose boot or sequence counter went back and that started over (reflashed, flash erased, a replacement board)',
    registers: [registry],
  });
  const failures = new Counter({
    name: 'sensorgate_store_write_failures_total',
    help: 'Commit batches that failed; their messages were not acked',
    registers: [registry],
  });
  const forwarded = new Counter({
    name: 'sensorgate_upstream_forwarded_total',
    help: 'Readings published upstream, by upstream QoS',
    labelNames: ['qos'] as const,
    registers: [registry],
  });
  const upstreamAcked = new Counter({
    name: 'sensorgate_upstream_acked_total',
    help: 'Readings acknowledged by the upstream broker (QoS 0: written to the socket), by upstream QoS',
    labelNames: ['qos'] as const,
    registers: [registry],
  });
  const upstreamDropped = new Counter({
    name: 'sensorgate_upstream_dropped_total',
    help: 'QoS 0 readings not forwarded: link down, or the in-memory QoS 0 buffer full',
    labelNames: ['qos', 'reason'] as const,
    registers: [registry],
  });
  const upstreamConnected = new Gauge({
    name: 'sensorgate_upstream_connected',
    help: '1 while the upstream MQTT connection is up',
    registers: [registry],
  });
  new Gauge({
    name: 'sensorgate_backlog_readings',
    help: 'QoS 1/2 readings in the durable outbox, not yet acknowledged upstream',
    registers: [registry],
    collect() {
      this.set(sources.backlog().readings);
    },
  });
  new Gauge({
    name: 'sensorgate_backlog_bytes',
    help: 'Bytes of the durable outbox, counted against upstream.backlogBudgetBytes',
    registers: [registry],
    collect() {
      this.set(sources.backlog().bytes);
    },
  });
  new Gauge({
    name: 'sensorgate_backlog_full',
    help: '1 while the backlog budget is reached and new QoS 1/2 readings are not acked',
    registers: [registry],
    collect() {
      this.set(sources.backlog().full ? 1 : 0);
    },
  });
  new Gauge({
    name: 'sensorgate_disk_free_bytes',
    help: 'Free space on the filesystem of the data directory, at the last check',
    registers: [registry],
    collect() {
      this.set(sources.diskFreeBytes());
    },
  });
  new Gauge({
    name: 'sensorgate_store_bytes',
    help: "Bytes of the database's files (retention.maxBytes bounds it)",
    registers: [registry],
    async collect() {
      this.set(await sources.storeBytes());
    },
  });
  // A scrape collects every metric at once: the four below share one look at the stations.
  let sampling: Promise<StationSample[]> | null = null;
  const stations = () =>
    (sampling ??= sources.stations().finally(() => {
      sampling = null;
    }));
  new Gauge({
    name: 'sensorgate_device_last_seen_seconds',
    help: 'Seconds since the device last sent a reading',
    labelNames: ['device'] as const,
    registers: [registry],
    async collect() {
      const all = await stations();
      this.reset();
      for (const s of all) this.set({ device: s.id }, s.lastSeenAgeSeconds);
    },
  });
  new Gauge({
    name: 'sensorgate_device_battery_volts',
    help: 'The newest batt_v of each device that sends one',
    labelNames: ['device'] as const,
    registers: [registry],
    async collect() {
      const all = await stations();
      this.reset();
      for (const s of all) if (s.batteryVolts !== null) this.set({ device: s.id }, s.batteryVolts);
    },
  });
  new Gauge({
    name: 'sensorgate_devices_silent',
    help: 'Devices with no reading for three of their usual intervals (or ui.silentAfterMs)',
    registers: [registry],
    async collect() {
      this.set((await stations()).filter((s) => s.silent).length);
    },
  });
  new Gauge({
    name: 'sensorgate_devices_low_battery',
    help: 'Devices whose newest batt_v is below ui.lowBatteryVolts',
    registers: [registry],
    async collect() {
      this.set((await stations()).filter((s) => s.lowBattery).length);
    },
  });
  const diskFullDropped = new Counter({
    name: 'sensorgate_disk_full_dropped_total',
    help: 'Messages not written because the disk was below store.minFreeBytes: qos0 readings (and their dead letters), broker (retained and QoS 1/2 non-telemetry messages, refused)',
    labelNames: ['what'] as const,
    registers: [registry],
  });
  const retentionDeleted = new Counter({
    name: 'sensorgate_retention_deleted_total',
    help: 'Readings deleted by retention, by reason (age: retention.maxAgeDays, size: retention.maxBytes)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const upstreamDuplicates = new Counter({
    name: 'sensorgate_upstream_duplicates_total',
    help: 'Messages the JetStream stream acknowledged as duplicates (a re-send it had stored already, so not stored again)',
    registers: [registry],
  });
  const beyondWindow = new Counter({
    name: 'sensorgate_upstream_beyond_dedup_window_total',
    help: 'Readings sent to JetStream later than upstream.nats.duplicateWindowMs after they may first have reached it (an upper bound on possible duplicates)',
    registers: [registry],
  });
  const retentionHeld = new Counter({
    name: 'sensorgate_retention_held_total',
    help: 'Devices whose retention pass stopped short of the cutoff at a reading not forwarded yet, per pass',
    registers: [registry],
  });
  new Gauge({
    name: 'sensorgate_store_repair_lost_bytes',
    help: 'Bytes of unreadable LevelDB files moved aside by the repair at start-up (0: no repair was needed)',
    registers: [registry],
    collect() {
      this.set(sources.repairLostBytes());
    },
  });
  new Gauge({
    name: 'sensorgate_outbox_dangling_removed',
    help: 'Outbox entries removed unforwarded because the reading they named was gone (damage outside the gateway)',
    registers: [registry],
    collect() {
      this.set(sources.outboxDangling());
    },
  });
  const denied = new Counter({
    name: 'sensorgate_auth_denied_total',
    help: 'Refused by authentication or authorisation: connect (CONNACK refusal), publish (connection closed), subscribe (SUBACK 0x80)',
    labelNames: ['action'] as const,
    registers: [registry],
  });
  const limits = new Counter({
    name: 'sensorgate_limit_exceeded_total',
    help: 'Connections closed or messages dropped for going over a limit (packet_size, connections, session_queue, slow_client)',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  const deadLettersDropped = new Counter({
    name: 'sensorgate_deadletters_dropped_total',
    help: 'Oldest dead letters deleted to keep deadLetters.maxCount',
    registers: [registry],
  });
  const sessionsExpired = new Counter({
    name: 'sensorgate_sessions_expired_total',
    help: 'Persistent sessions removed after mqtt.sessionExpirySeconds offline',
    registers: [registry],
  });
  const connected = new Gauge({
    name: 'sensorgate_connected_clients',
    help: 'MQTT clients connected to the embedded broker',
    registers: [registry],
  });

  // Per-message metrics go through label-bound children: prom-client hashes a label object on every call otherwise.
  const ackChildren = [0, 1, 2].map((q) => ackSeconds.labels(String(q)));
  const outcomeChildren = new Map<string, ReturnType<typeof outcomes.labels>>();
  const outcomeChild = (outcome: Outcome, qos: Qos) => {
    const key = `${outcome}${qos}`;
    let child = outcomeChildren.get(key);
    if (!child) {
      child = outcomes.labels(outcome, String(qos));
      outcomeChildren.set(key, child);
    }
    return child;
  };

  return {
    registry,
    outcome: (outcome, qos, n) => outcomeChild(outcome, qos).inc(n),
    missing: (qos, delta) => missing.inc({ qos: String(qos) }, delta),
    diskFullDropped: (what) => diskFullDropped.inc({ what }),
    retentionDeleted: (reason, n) => retentionDeleted.inc({ reason }, n),
    retentionHeld: (n) => retentionHeld.inc(n),
    upstreamDuplicate: (n) => upstreamDuplicates.inc(n),
    beyondDedupWindow: (n) => beyondWindow.inc(n),
    storeWrite: (info) => {
      batchSize.observe(info.entries);
      writeSeconds.observe({ sync: String(info.sync) }, info.ms / 1000);
      if (info.sync) fsyncs.inc();
    },
    ack: (qos, ms) => (ackChildren[qos] as ReturnType<typeof ackSeconds.labels>).observe(ms / 1000),
    connectedClients: (count) => connected.set(count),
    sessionExpired: () => sessionsExpired.inc(),
    limitExceeded: (limit) => limits.inc({ limit }),
    denied: (action) => denied.inc({ action }),
    storeFailure: () => failures.inc(),
    deadLettersDropped: (n) => deadLettersDropped.inc(n),
    bootReset: () => bootResets.inc(),
    forwarded: (qos, n) => forwarded.inc({ qos: String(qos) }, n),
    acked: (qos, n) => upstreamAcked.inc({ qos: String(qos) }, n),
    dropped: (qos, reason, n) => upstreamDropped.inc({ qos: String(qos), reason }, n),
    connected: (up) => upstreamConnected.set(up ? 1 : 0),
  };
}
