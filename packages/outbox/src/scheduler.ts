import {
  createScheduler as createCoreScheduler,
  defaultInstanceId,
  InvalidOptionError,
  integer,
  knownKeys,
  nonEmptyString,
  type PeriodicJob,
  type Scheduler,
} from '@eventual/core';
import cron from 'node-cron';
import { runCheckBack } from './checkback.js';
import { contextOf, type OutboxContext } from './context.js';
import type { Outbox } from './outbox.js';
import { deletePublishedBatch } from './sql/cleanup.js';
import { countDead, selectDead } from './sql/dead.js';
import { pruneLeases } from './sql/leases.js';
import { run } from './sql/statement.js';

/**
 * The outbox's built-in jobs, with their default schedules: `checkback` of prepared
 * messages (every 5 s), `cleanup` of published rows (every 5 min), `sweep`, which
 * reports dead messages (every minute), and `lease-recovery`, which frees expired
 * shard leases and drops relay members gone for over an hour (every 10 min).
 */
export type JobName = 'checkback' | 'cleanup' | 'sweep' | 'lease-recovery';

/** Schedules and limits of the outbox's jobs; an unknown key or a wrong value throws `InvalidOptionError`. */
export interface OutboxJobOptions {
  /** Cron expressions (node-cron syntax, seconds allowed), or `false` to not schedule a job. */
  schedules?: Partial<Record<JobName, string | false>>;
  /** Published rows older than this are deleted by `cleanup`. Default 24 h. */
  retentionMs?: number;
  /** Rows per cleanup DELETE: each is one short transaction. Default 1,000. */
  cleanupBatchSize?: number;
  /** DELETEs per cleanup run at most, so one run's work is bounded; the next run goes on. Default 20. */
  cleanupMaxBatches?: number;
}

/** Options of `createScheduler`; an unknown key or a wrong value throws `InvalidOptionError`. */
export interface SchedulerOptions extends OutboxJobOptions {
  /** Names this instance in the run leases and events. Default `<hostname>-<pid>-<random>`, new for every process. */
  instanceId?: string;
  /** How long a run may hold its cluster-wide lease (node-cron `distributedLease`). Default 5 min. */
  runLeaseMs?: number;
  /**
   * More jobs to run once per cluster on the same coordinator: other packages' jobs
   * (`consumer.jobs`, `orchestrator.jobs`), or your own, as a list of `PeriodicJob`s or
   * as `{ 'nightly-report': { schedule: '0 0 3 * * *', run: () => report() } }`. `run`
   * returns a count for the `scheduler:ran` event.
   */
  jobs?: readonly PeriodicJob[] | Record<string, { schedule: string; run: () => Promise<number> }>;
}

const DEFAULT_SCHEDULES: Record<JobName, string> = {
  checkback: '*/5 * * * * *',
  cleanup: '17 */5 * * * *',
  sweep: '30 * * * * *',
  'lease-recovery': '45 */10 * * * *',
};

/**
 * The outbox's periodic jobs, for a scheduler (`createScheduler` here, or the one a
 * service runs for every package): check-back of prepared messages, cleanup of
 * published rows, the dead-message sweep and lease recovery. Their keys name the
 * outbox's table, so each runs once per cluster per outbox.
 */
export function outboxJobs(outbox: Outbox, instanceId: string, options: OutboxJobOptions = {}): PeriodicJob[] {
  knownKeys('outbox jobs', options, ['schedules', 'retentionMs', 'cleanupBatchSize', 'cleanupMaxBatches']);
  const context = contextOf(outbox);
  const { o } = context;
  const retentionMs = integer('retentionMs', options.retentionMs ?? 86_400_000, 0);
  const cleanupBatchSize = integer('cleanupBatchSize', options.cleanupBatchSize ?? 1_000, 1, 100_000);
  const cleanupMaxBatches = integer('cleanupMaxBatches', options.cleanupMaxBatches ?? 20, 1, 10_000);
  knownKeys('schedules', options.schedules ?? {}, Object.keys(DEFAULT_SCHEDULES));
  const schedules = { ...DEFAULT_SCHEDULES, ...(options.schedules ?? {}) };
  for (const [job, expression] of Object.entries(schedules)) {
    if (expression !== false && (typeof expression !== 'string' || !cron.validate(expression)))
      throw new InvalidOptionError(
        `schedules.${job} must be a node-cron expression (e.g. '*/5 * * * * *') or false, got ${JSON.stringify(expression)}`,
      );
  }
  const runs: Record<JobName, () => Promise<number>> = {
    checkback: () => runCheckBack(context, instanceId),
    cleanup: () => cleanup(context, instanceId, retentionMs, cleanupBatchSize, cleanupMaxBatches),
    sweep: () => sweep(context, instanceId),
    async 'lease-recovery'() {
      const [row] = await run<{ pruned: number; freed: number }>(o.knex, pruneLeases(o, 3_600_000));
      return (row?.pruned ?? 0) + (row?.freed ?? 0);
    },
  };
  return (Object.keys(runs) as JobName[]).map((name) => ({
    name,
    // The same key on every instance: the node-cron task name and the lease row.
    key: `${o.schema}.${o.table}:${name}`,
    schedule: schedules[name] ?? false,
    run: runs[name],
  }));
}

async function cleanup(
  { o, events, counters }: OutboxContext,
  instanceId: string,
  retentionMs: number,
  batchSize: number,
  maxBatches: number,
): Promise<number> {
  let total = 0;
  for (let i = 0; i < maxBatches; i++) {
    const [row] = await run<{ deleted: number }>(o.knex, deletePublishedBatch(o, retentionMs, batchSize));
    total += row?.deleted ?? 0;
    if ((row?.deleted ?? 0) < batchSize) break;
  }
  counters.cleaned += total;
  if (total > 0) events.emit('cleanup:deleted', { instanceId, deleted: total });
  return total;
}

async function sweep({ o, events }: OutboxContext, instanceId: string): Promise<number> {
  const [count] = await run<{ dead: number }>(o.knex, countDead(o));
  const dead = count?.dead ?? 0;
  if (dead > 0) {
    const [oldest] = await run<{ id: string }>(o.knex, selectDead(o, 1, null, null));
    events.emit('sweep:dead', { instanceId, dead, oldestDeadId: oldest?.id ?? null });
  }
  return dead;
}

/**
 * A scheduler for one outbox's jobs (and `jobs` of your own), once per cluster through
 * the PostgreSQL run coordinator on the outbox's lease table. A service built with
 * `createService` has one already, for every package's jobs.
 */
export function createScheduler(outbox: Outbox, options: SchedulerOptions = {}): Scheduler {
  knownKeys('createScheduler', options, [
    'instanceId',
    'schedules',
    'retentionMs',
    'cleanupBatchSize',
    'cleanupMaxBatches',
    'runLeaseMs',
    'jobs',
  ]);
  const { o, logger } = contextOf(outbox);
  const instanceId = nonEmptyString('instanceId', options.instanceId ?? defaultInstanceId());
  const { jobs: extra = {}, instanceId: _, runLeaseMs, ...jobOptions } = options;
  const jobs = outboxJobs(outbox, instanceId, jobOptions);
  if (Array.isArray(extra)) jobs.push(...(extra as readonly PeriodicJob[]));
  else
    for (const [name, spec] of Object.entries(extra)) {
      if (name in DEFAULT_SCHEDULES)
        throw new InvalidOptionError(`jobs.${name}: '${name}' is a built-in job; configure it with schedules.${name}`);
      if (!/^[a-z][a-z0-9-]{0,40}$/.test(name))
        throw new InvalidOptionError(`jobs: job names must match /^[a-z][a-z0-9-]{0,40}$/, got '${name}'`);
      if (typeof spec?.run !== 'function')
        throw new InvalidOptionError(`jobs.${name}.run must be a function returning a Promise<number>`);
      jobs.push({ name, key: `${o.schema}.${o.table}:${name}`, schedule: spec.schedule, run: spec.run });
    }
  return createCoreScheduler({
    knex: o.knex,
    leasesTable: o.tables.leases,
    jobs,
    instanceId,
    ...(runLeaseMs === undefined ? {} : { runLeaseMs }),
    logger,
  });
}
