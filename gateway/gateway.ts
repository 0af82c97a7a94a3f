/** Composition root: builds every part from the frozen config and injected deps, and owns the shutdown order. */
import { resolve } from 'node:path';
import { startBroker, type Broker } from './broker/broker.js';
import { createAuthorizePublish } from './broker/hooks.js';
import { createBrokerPersistence } from './broker/persistence.js';
import { createTopicRouter } from './domain/topics.js';
import { brokerId } from './broker/wills.js';
import type { FrozenConfig } from './config.js';
import { createApiHandler } from './http/api.js';
import { startHttp, type HttpServer } from './http/server.js';
import type { Logger } from './shared/log.js';
import { createMetrics } from './metrics.js';
import { watchDiskSpace, type DiskSpace } from './store/disk-space.js';
import { LevelStore, type Db } from './store/level-store.js';
import { startForwarder, type Forwarder } from './forward/forwarder.js';
import type { Refusal } from './ingest/gate.js';
import { createIngest, type Ingest } from './ingest/ingest.js';

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

export interface Gateway {
  /** Opens the store and starts listening; resolves with the bound addresses. */
  start(): Promise<{ mqtt: Endpoint; http: Endpoint }>;
  /** Stops accepting, finishes in-flight commits, closes the database. Idempotent. */
  close(): Promise<void>;
  readonly ingest: Ingest;
}

export function createGateway(config: FrozenConfig, deps: GatewayDeps): Gateway {
  const log = deps.log;
  const now = deps.now ?? Date.now;
  let store: LevelStore | undefined;
  let ingest: Ingest | undefined;
  let broker: Broker | undefined;
  let http: HttpServer | undefined;
  let forwarder: Forwarder | undefined;
  let disk: DiskSpace | undefined;
  let closing: Promise<void> | undefined;

  async function shutdown(): Promise<void> {
    log.info('shutting down');
    // Reverse of start: no new devices or messages, no new API calls, then let queued commits finish, then the db.
    await broker?.close();
    await http?.close();
    await ingest?.drain();
    await forwarder?.close(config.shutdown.timeoutMs / 2);
    disk?.close();
    await store?.close();
    log.info('shut down');
  }

  return {
    get ingest() {
      if (!ingest) throw new TypeError('gateway not started');
      return ingest;
    },
    async start() {
      const dataDir = resolve(config.store.dataDir);
      try {
        store = await LevelStore.open(dataDir, deps.createDb, config.store.verifyOnStart);
        if (store.repaired) {
          const { reason, lostFiles, lostBytes } = store.repaired;
          log.error(
            { dataDir, reason, lostFiles, lostBytes },
            `store was damaged and has been repaired: every readable record kept; ${lostFiles.length} unreadable file(s) (${lostBytes} bytes) moved to ${dataDir}/lost`,
          );
        }
        log.info({ dataDir }, 'store open');
        const openStore = store;
        const upstream = config.upstream;
        const backlogFull = () => upstream.enabled && openStore.outboxStats().bytes >= upstream.backlogBudgetBytes;
        const space = await watchDiskSpace(
          dataDir,
          config.store.minFreeBytes,
          config.store.diskCheckMs,
          log.child({ module: 'disk' }),
        );
        disk = space;
        const refusal = (): Refusal | null =>
          space.full
            ? {
                code: 'GW_DISK_FULL',
                reason: `disk nearly full (${space.freeBytes} bytes free, reserve ${config.store.minFreeBytes})`,
              }
            : backlogFull()
              ? { code: 'GW_BACKLOG_FULL', reason: 'backlog budget reached' }
              : null;
        const metrics = createMetrics({
          connectedClients: () => broker?.aedes.connectedClients ?? 0,
          backlog: () => ({ ...openStore.outboxStats(), full: backlogFull() }),
          diskFreeBytes: () => space.freeBytes,
          repairLostBytes: () => openStore.repaired?.lostBytes ?? 0,
        });
        const opened = await createIngest({
          store,
          options: {
            ...config.ingest,
            maxBatch: config.store.maxBatch,
            syncWrites: config.store.syncWrites,
            outbox: upstream.enabled,
          },
          log: log.child({ module: 'ingest' }),
          metrics,
          now,
          refusal,
          onCommitted: (entries) => forwarder?.committed(entries),
        });
        ingest = opened;
        if (store.unreadableDevices > 0) {
          log.error(
            { devices: store.unreadableDevices },
            'unreadable device records skipped: those devices start with fresh dedup state',
          );
        }
        if (upstream.enabled) {
          forwarder = await startForwarder({
            cfg: upstream,
            gatewayId: config.gatewayId,
            store,
            lastGseq: await store.lastGseq(),
            log: log.child({ module: 'forwarder' }),
            metrics,
            now,
            random: deps.random ?? Math.random,
          });
        }
        const route = createTopicRouter({ prefix: config.ingest.topicPrefix, foreign: config.ingest.foreign });
        const persistence = createBrokerPersistence(store.db, config.store.syncInboundQos2);
        broker = await startBroker({
          id: brokerId(config.gatewayId, await openStore.countStart()),
          host: config.mqtt.host,
          port: config.mqtt.port,
          authorizePublish: createAuthorizePublish({
            route,
            ingest: opened,
            metrics,
            now,
            storeRetained: (packet) => persistence.storeRetained(packet as never),
          }),
          persistence,
          log: log.child({ module: 'broker' }),
        });
        const running = forwarder;
        http = await startHttp(
          config.http.host,
          config.http.port,
          createApiHandler({
            store: openStore,
            registry: metrics.registry,
            devices: () => opened.devices(),
            totals: () => opened.totals(),
            forwarding: async () => (running ? running.status() : { enabled: false }),
            unhealthyReason() {
              if (closing) return 'shutting down';
              if (broker?.aedes.closed !== false) return 'broker not running';
              const err = opened.lastWriteError;
              if (err) return `store write failing: ${err.message}`;
              const refused = refusal();
              if (refused) return `${refused.reason}: QoS 1/2 readings are not acked`;
              return null;
            },
          }),
          log.child({ module: 'http' }),
        );
        return { mqtt: broker.address, http: http.address };
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
