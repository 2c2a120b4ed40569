import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createDatabase, type Devstack, startDevstack } from '@eventual/devstack';
import type { Knex } from 'knex';
import { type CarrierFaults, NO_FAULTS } from '../carrier/faults.js';
import { migrateCarrierDatabase } from '../carrier/schema.js';
import { DEFAULT_TIMING, type SagaTiming } from '../order/saga.js';
import { migrateOrderDatabase, seedCatalog } from '../order/schema.js';
import { migratePaymentDatabase, seedWallets } from '../payment/schema.js';
import { connect } from '../shared/database.js';
import type { SeedData } from '../shared/demo-data.js';
import { ensureTopics } from '../shared/kafka.js';
import { allTopics, type Topics, topicsFor } from '../shared/topics.js';
import { migrateWarehouseDatabase, seedProducts } from '../warehouse/schema.js';
import { type ServiceName, ServiceProcess } from './processes.js';

/** PostgreSQL and Kafka that are already running (tests pass the vitest globalSetup's). */
export interface RunningInfrastructure {
  adminDatabaseUrl: string;
  kafkaBrokers: string[];
}

export interface WorldOptions {
  /** Use these instead of starting a devstack (which reads DATABASE_URL/KAFKA_BROKERS or starts its own). */
  infrastructure?: RunningInfrastructure;
  seed: SeedData;
  carrierFaults?: CarrierFaults;
  carrierSeed?: number;
  /** Saga deadlines, the warehouse's carrier timeout and when its check-back first asks. */
  timing?: Partial<SagaTiming> & { carrierTimeoutMs?: number; checkAfterMs?: number };
  /** Progress lines ("starting services ..."). */
  log?: (line: string) => void;
  /** An interrupted start cleans up without keeping logs. */
  signal?: AbortSignal;
}

export const SERVICES: ServiceName[] = ['carrier', 'order', 'payment', 'warehouse'];
/** The services chaos may kill: ours. The carrier is someone else's system. */
export const KILLABLE: ServiceName[] = ['order', 'payment', 'warehouse'];

export interface World {
  namespace: string;
  topics: Topics;
  databaseUrls: Record<ServiceName, string>;
  /** Direct connections, for the invariant checks. */
  db: Record<ServiceName, Knex>;
  orderUrl: string;
  carrierUrl: string;
  processes: Record<ServiceName, ServiceProcess>;
  logDir: string;
  /** Service exits nobody asked for (each is restarted by the world's supervisor). */
  crashes: string[];
  /** Stops the services (SIGTERM, SIGKILL after `graceMs`), then the devstack if the world started one. */
  stop(options?: { keepLogs?: boolean; graceMs?: number }): Promise<void>;
  /** Synchronous last resort (process exit): SIGKILL every service. */
  killNow(): void;
}

const exampleRoot = fileURLToPath(new URL('../../', import.meta.url));
const entry = (service: ServiceName) => join(exampleRoot, 'src', service, 'main.ts');

/**
 * Everything the example needs, started the way separate deployments would be: one
 * database per service, the topics, business tables migrated and seeded, and each
 * service (plus the carrier simulator) as its own process.
 */
export async function startWorld(options: WorldOptions): Promise<World> {
  const log = options.log ?? (() => {});
  const cleanups: Array<() => Promise<unknown>> = [];
  let devstack: Devstack | undefined;
  let infrastructure = options.infrastructure;
  if (!infrastructure) {
    devstack = await startDevstack();
    // Capped: after a Ctrl-C the terminal has signalled PostgreSQL and Kafka too, and
    // stopping a server that already exited may never settle. (The devstack's
    // watchdogs stop both anyway once this process is gone.)
    cleanups.push(() => Promise.race([devstack!.stop(), sleep(15_000)]));
    infrastructure = { adminDatabaseUrl: devstack.adminDatabaseUrl, kafkaBrokers: devstack.kafkaBrokers };
  }
  const logDir = mkdtempSync(join(tmpdir(), 'eventual-demo-'));
  const processes = {} as Record<ServiceName, ServiceProcess>;
  const db = {} as Record<ServiceName, Knex>;
  let state: 'starting' | 'running' | 'stopping' = 'starting';
  const crashes: string[] = [];

  const stopAll = async (keepLogs: boolean, graceMs?: number) => {
    state = 'stopping';
    await Promise.allSettled(Object.values(processes).map((p) => p.stop(graceMs)));
    await Promise.allSettled(Object.values(processes).map((p) => p.closeLog()));
    await Promise.allSettled(Object.values(db).map((k) => k.destroy()));
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    if (!keepLogs) await rm(logDir, { recursive: true, force: true });
  };

  try {
    const namespace = `demo-${randomBytes(4).toString('hex')}`;
    const topics = topicsFor(namespace);
    log(`creating databases and topics (namespace ${namespace})`);
    const databaseUrls = {} as Record<ServiceName, string>;
    for (const service of SERVICES) {
      databaseUrls[service] = await createDatabase(infrastructure.adminDatabaseUrl, `demo_${service}`);
      db[service] = connect(databaseUrls[service], 4);
    }
    await ensureTopics(infrastructure.kafkaBrokers, allTopics(topics));
    await Promise.all([
      migrateOrderDatabase(db.order).then(() => seedCatalog(db.order, options.seed.products)),
      migratePaymentDatabase(db.payment).then(() => seedWallets(db.payment, options.seed.customers)),
      migrateWarehouseDatabase(db.warehouse).then(() => seedProducts(db.warehouse, options.seed.products)),
      migrateCarrierDatabase(db.carrier),
    ]);

    const [orderPort, carrierPort] = [await freePort(), await freePort()];
    const orderUrl = `http://127.0.0.1:${orderPort}`;
    const carrierUrl = `http://127.0.0.1:${carrierPort}`;
    const timing = { ...DEFAULT_TIMING, ...options.timing };
    const common = { KAFKA_BROKERS: infrastructure.kafkaBrokers.join(','), EVENTUAL_NAMESPACE: namespace };
    const env: Record<ServiceName, Record<string, string>> = {
      carrier: {
        DATABASE_URL: databaseUrls.carrier,
        PORT: String(carrierPort),
        CARRIER_FAULTS: JSON.stringify(options.carrierFaults ?? NO_FAULTS),
        CARRIER_SEED: String(options.carrierSeed ?? 42),
      },
      // One process per service: a stable instance id lets a restarted one (--chaos)
      // take its relay shards back at once instead of waiting out its old leases.
      order: {
        ...common,
        INSTANCE_ID: 'order-1',
        DATABASE_URL: databaseUrls.order,
        PORT: String(orderPort),
        STEP_DEADLINE_MS: String(timing.stepDeadlineMs),
        SHIP_DEADLINE_MS: String(timing.shipDeadlineMs),
      },
      payment: { ...common, INSTANCE_ID: 'payment-1', DATABASE_URL: databaseUrls.payment },
      warehouse: {
        ...common,
        INSTANCE_ID: 'warehouse-1',
        DATABASE_URL: databaseUrls.warehouse,
        CARRIER_URL: carrierUrl,
        ...(options.timing?.carrierTimeoutMs ? { CARRIER_TIMEOUT_MS: String(options.timing.carrierTimeoutMs) } : {}),
        ...(options.timing?.checkAfterMs !== undefined ? { CHECK_AFTER_MS: String(options.timing.checkAfterMs) } : {}),
      },
    };
    for (const service of SERVICES) {
      processes[service] = new ServiceProcess({
        name: service,
        entry: entry(service),
        cwd: exampleRoot,
        env: env[service],
        logFile: join(logDir, `${service}.log`),
        onUnexpectedExit: (name, how) => {
          if (state !== 'running') return;
          crashes.push(`${name} ${how}`);
          log(`${name} ${how} on its own; restarting it`);
          setTimeout(() => {
            if (state === 'running') processes[name].start().catch(() => {});
          }, 1_000);
        },
      });
    }
    log(`starting carrier, order, payment and warehouse (logs: ${logDir})`);
    await processes.carrier.start();
    await Promise.all(KILLABLE.map((s) => processes[s].start()));
    state = 'running';

    return {
      namespace,
      topics,
      databaseUrls,
      db,
      orderUrl,
      carrierUrl,
      processes,
      logDir,
      crashes,
      stop: (stopOptions) => stopAll(stopOptions?.keepLogs ?? false, stopOptions?.graceMs),
      killNow: () => {
        for (const p of Object.values(processes)) p.killNow();
      },
    };
  } catch (error) {
    const tails = Object.values(processes)
      .filter((p) => p.unexpectedExits > 0 || !p.running)
      .map((p) => `--- ${p.name} log:\n${p.tail(15)}`)
      .join('\n');
    const interrupted = options.signal?.aborted === true;
    await stopAll(!interrupted, interrupted ? 5_000 : undefined);
    if (tails && !interrupted) log(`${tails}\n(logs kept in ${logDir})`);
    throw error;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
