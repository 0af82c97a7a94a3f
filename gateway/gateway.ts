/** Composition root: builds every part from the frozen config and injected deps, and owns the shutdown order. */
import { resolve } from 'node:path';
import { Access } from './auth/access.js';
import { createAccessHooks } from './broker/access.js';
import { startBroker } from './broker/broker.js';
import { createAuthorizePublish } from './broker/hooks.js';
import { createBrokerPersistence, sessionStore } from './broker/persistence.js';
import { createTopicRouter } from './domain/topics.js';
import { brokerId } from './broker/wills.js';
import type { FrozenConfig } from './config.js';
import { createApiHandler } from './http/api.js';
import { startHttp } from './http/server.js';
import { Live } from './http/live.js';
import { loadUiFiles } from './http/ui-files.js';
import type { DeviceRecord } from './domain/model.js';
import type { Logger } from './shared/log.js';
import { createMetrics, type StationSample } from './metrics.js';
import { watchDiskSpace } from './store/disk-space.js';
import { startRetention } from './store/retention.js';
import { LevelStore, type Db } from './store/level-store.js';
import { startForwarder } from './forward/forwarder.js';
import type { Refusal } from './ingest/gate.js';
import { createIngest, type Ingest } from './ingest/ingest.js';
import type { CommitEntry } from './ingest/store-port.js';

export interface GatewayDeps {
  log: Logger;
  now?: () => number;
  /** Lets tests wrap the database to slow down or fail writes. */
  createDb?: (dir: string) => Db;
  random?: () => number;
}

export interface Endpoint {
  host: string;
  port: number;
}

/** Where each listener is bound: `mqtts` and `ws` only when configured. */
export interface Addresses {
  mqtt: Endpoint;
  mqtts?: Endpoint;
  ws?: Endpoint;
  http: Endpoint;
}

export interface Gateway {
  /** Opens the store and starts listening; resolves with the bound addresses. */
  start(): Promise<Addresses>;
  /** Stops accepting, finishes in-flight commits, closes the database. Idempotent. */
  close(): Promise<void>;
  /** Re-reads the users file (SIGHUP): new connections use it, connected clients keep their grants. */
  reload(): Promise<void>;
  readonly ingest: Ingest;
}

/** Something to close at shutdown, registered when it was created. */
type Closer = () => Promise<void> | void;

export function createGateway(config: FrozenConfig, deps: GatewayDeps): Gateway {
  const log = deps.log;
  const now = deps.now ?? Date.now;
  /** Closed in reverse: no new API calls, no new devices or messages, queued commits finish, forwarding, the db. */
  const closers: Closer[] = [];
  let started: { ingest: Ingest; access: Access } | undefined;
  let closing: Promise<void> | undefined;

  async function shutdown(): Promise<void> {
    log.info('shutting down');
    for (const close of closers.splice(0).reverse()) await close();
    log.info('shut down');
  }

  async function start(): Promise<Addresses> {
    const dataDir = resolve(config.store.dataDir);
    const { store, found } = await LevelStore.open(dataDir, {
      ...(deps.createDb ? { createDb: deps.createDb } : {}),
      verify: config.store.verifyOnStart,
      log: log.child({ module: 'store' }),
      commitIntervalMs: config.store.commitIntervalMs,
    });
    closers.push(() => store.close());
    if (found.repaired) {
      const { reason, lostFiles, lostBytes } = found.repaired;
      log.error(
        { dataDir, reason, lostFiles, lostBytes },
        `store was damaged and has been repaired: every readable record kept; ${lostFiles.length} unreadable file(s) (${lostBytes} bytes) moved to ${dataDir}/lost`,
      );
    }
    log.info(
      { dataDir, unclean: found.unclean },
      found.unclean ? 'store open; the last run did not close it' : 'store open',
    );

    const space = await watchDiskSpace(
      dataDir,
      config.store.minFreeBytes,
      config.store.diskCheckMs,
      log.child({ module: 'disk' }),
    );
    closers.push(() => space.close());
    const upstream = config.upstream;
    const backlogFull = () => upstream.enabled && store.outboxStats().bytes >= upstream.backlogBudgetBytes;
    const refusal = (): Refusal | null =>
      space.full
        ? {
            code: 'GW_DISK_FULL',
            reason: `disk nearly full (${space.freeBytes} bytes free, reserve ${config.store.minFreeBytes})`,
          }
        : backlogFull()
          ? { code: 'GW_BACKLOG_FULL', reason: 'backlog budget reached' }
          : null;
    const live = new Live({
      silentAfterMs: config.ui.silentAfterMs,
      fallbackSilentAfterMs: config.ui.fallbackSilentAfterMs,
      lowBatteryVolts: config.ui.lowBatteryVolts,
      recent: (id, n) => store.recentReadings(id, n),
    });
    closers.push(() => live.close());
    // Filled once the ingest exists; the metrics are made before it.
    let devices: () => DeviceRecord[] = () => [];
    const stations = async (): Promise<StationSample[]> => {
      const at = now();
      const out: StationSample[] = [];
      for (const d of devices()) {
        const { latest, silent, lowBattery } = await live.station(d.id, d.lastSeen, at);
        out.push({
          id: d.id,
          lastSeenAgeSeconds: Math.max(0, (at - d.lastSeen) / 1000),
          silent,
          batteryVolts: latest?.m.batt_v ?? null,
          lowBattery,
        });
      }
      return out;
    };
    const metrics = createMetrics({
      stations,
      backlog: () => ({ ...store.outboxStats(), full: backlogFull() }),
      diskFreeBytes: () => space.freeBytes,
      repairLostBytes: () => found.repaired?.lostBytes ?? 0,
      outboxDangling: () => store.danglingRemoved,
      storeBytes: () => store.bytesOnDisk(),
    });
    store.committer.watch(metrics.storeWrite);
    const retention = startRetention(store, config.retention, {
      log: log.child({ module: 'retention' }),
      metrics,
      now,
    });
    closers.push(() => retention.close());

    // Before the ingest, which hands it every committed batch; closed after the ingest's last commit.
    const forwarder = upstream.enabled
      ? await startForwarder({
          cfg: upstream,
          gatewayId: config.gatewayId,
          store,
          lastGseq: await store.lastGseq(),
          log: log.child({ module: 'forwarder' }),
          metrics,
          now,
          random: deps.random ?? Math.random,
        })
      : null;
    if (forwarder) closers.push(() => forwarder.close(config.shutdown.timeoutMs / 2));

    const ingest = await createIngest({
      store,
      options: {
        ...config.ingest,
        maxBatch: config.store.maxBatch,
        syncWrites: config.store.syncWrites,
        outbox: upstream.enabled,
        deadLetters: config.deadLetters,
      },
      log: log.child({ module: 'ingest' }),
      metrics,
      now,
      refusal,
      onCommitted: (entries: readonly CommitEntry[]) => {
        forwarder?.committed(entries);
        live.committed(entries);
      },
    });
    closers.push(() => ingest.drain());
    devices = () => ingest.devices();

    const access = await Access.open(
      { ...config.auth, prefix: config.ingest.topicPrefix },
      log.child({ module: 'auth' }),
    );
    started = { ingest, access };
    const accessHooks = createAccessHooks({
      access,
      metrics,
      log: log.child({ module: 'auth' }),
      now,
      logIntervalMs: config.ingest.rejectLogIntervalMs,
    });
    const persistence = createBrokerPersistence(store.db, store.committer, config.store.syncInboundQos2);
    const broker = await startBroker({
      id: brokerId(config.gatewayId, await store.countStart()),
      host: config.mqtt.host,
      tls: config.mqtt.tls,
      ws: config.mqtt.ws,
      sessions: { store: sessionStore(store.db, persistence), expiryMs: config.mqtt.sessionExpirySeconds * 1000 },
      port: config.mqtt.port,
      authorizePublish: createAuthorizePublish({
        route: createTopicRouter({ prefix: config.ingest.topicPrefix, foreign: config.ingest.foreign }),
        ingest,
        metrics,
        now,
        storeRetained: (packet) => persistence.storeRetained(packet as never),
        publishRefusal: accessHooks.publishRefusal,
        diskFull: () => space.full,
      }),
      persistence,
      access: accessHooks,
      limits: config.mqtt,
      metrics,
      log: log.child({ module: 'broker' }),
    });
    closers.push(() => broker.close());

    const ui = config.ui.enabled
      ? await loadUiFiles().catch((err: unknown) => {
          log.warn({ err }, 'the page at / is not available: its files could not be read (npm run build)');
          return `the page's files could not be read: ${(err as Error).message}`;
        })
      : 'the page is off (ui.enabled: false)';
    const http = await startHttp(
      config.http.host,
      config.http.port,
      createApiHandler({
        store,
        registry: metrics.registry,
        devices: () => ingest.devices(),
        totals: () => ingest.totals(),
        forwarding: async () => (forwarder ? forwarder.status() : { enabled: false }),
        oldestTs: (id) => store.oldestTs(id),
        readingsBetween: (fromTs, toTs) => store.readingsBetween(fromTs, toTs),
        snapshot: () => store.snapshot(),
        storage: async () => ({
          bytes: await store.bytesOnDisk(),
          freeBytes: space.freeBytes,
          horizonTs: retention.horizonTs,
          retention: { maxAgeDays: config.retention.maxAgeDays, maxBytes: config.retention.maxBytes },
        }),
        scopeOf: (authorization) => access.scopeOf(authorization),
        deviceReadings: (id, fromTs, toTs) => store.deviceReadings(id, fromTs, toTs),
        live,
        ui,
        now,
        unhealthyReason() {
          if (closing) return 'shutting down';
          if (broker.aedes.closed) return 'broker not running';
          const err = ingest.lastWriteError;
          if (err) return `store write failing: ${err.message}`;
          const refused = refusal();
          if (refused) return `${refused.reason}: QoS 1/2 readings are not acked`;
          return null;
        },
      }),
      log.child({ module: 'http' }),
    );
    closers.push(() => http.close());
    return { ...broker.addresses, http: http.address };
  }

  return {
    get ingest() {
      if (!started) throw new TypeError('gateway not started');
      return started.ingest;
    },
    async reload() {
      await started?.access.reload();
    },
    async start() {
      try {
        return await start();
      } catch (err) {
        await shutdown().catch((closeErr: unknown) => log.error({ err: closeErr }, 'cleanup after failed start'));
        throw err;
      }
    },
    close() {
      closing ??= shutdown();
      return closing;
    },
  };
}
