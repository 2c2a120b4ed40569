import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import cron, { type ScheduledTask } from 'node-cron';
import { runCheckBack } from './checkback.js';
import { InvalidOptionError } from './errors.js';
import type { Outbox } from './outbox.js';
import { createRunCoordinator, type PostgresRunCoordinator } from './run-coordinator.js';
import { deletePublishedBatch } from './sql/cleanup.js';
import { countDead, selectDead } from './sql/dead.js';
import { pruneLeases } from './sql/leases.js';
import { run } from './sql/statement.js';
import { integer, knownKeys, nonEmptyString } from './validate.js';

export type JobName = 'checkback' | 'cleanup' | 'sweep' | 'lease-recovery';

export interface SchedulerOptions {
  instanceId?: string;
  /** Cron expressions (node-cron syntax, seconds allowed), or `false` to not schedule a job. */
  schedules?: Partial<Record<JobName, string | false>>;
  /** Published rows older than this are deleted by `cleanup`. Default 24 h. */
  retentionMs?: number;
  /** Rows per cleanup DELETE, and DELETEs per run: bounded work per run. Defaults 1,000 and 20. */
  cleanupBatchSize?: number;
  cleanupMaxBatches?: number;
  /** How long a run may hold its cluster-wide lease (node-cron `distributedLease`). Default 5 min. */
  runLeaseMs?: number;
  /**
   * More jobs to run once per cluster on the same coordinator, e.g. the saga
   * orchestrator's sweep: `{ 'saga-sweep': { schedule: '* * * * * *', run: () => orchestrator.sweep() } }`.
   * `run` returns a count for the `scheduler:ran` event.
   */
  jobs?: Record<string, { schedule: string; run: () => Promise<number> }>;
}

const DEFAULT_SCHEDULES: Record<JobName, string> = {
  checkback: '*/5 * * * * *',
  cleanup: '17 */5 * * * *',
  sweep: '30 * * * * *',
  'lease-recovery': '45 */10 * * * *',
};

export interface Scheduler {
  readonly coordinator: PostgresRunCoordinator;
  start(): void;
  /** Stops scheduling and waits for runs in progress to finish. */
  stop(): Promise<void>;
  /** Runs a job now on this instance, outside the schedule (and without the coordinator). */
  runNow(job: JobName | (string & {})): Promise<number>;
}

/**
 * node-cron drives the outbox's periodic jobs; each scheduled run executes once per
 * cluster through the PostgreSQL run coordinator, however many instances schedule it.
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
  const o = outbox.options;
  const { events, counters } = outbox.internals;
  const instanceId = nonEmptyString(
    'instanceId',
    options.instanceId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
  );
  const retentionMs = integer('retentionMs', options.retentionMs ?? 86_400_000, 0);
  const cleanupBatchSize = integer('cleanupBatchSize', options.cleanupBatchSize ?? 1_000, 1, 100_000);
  const cleanupMaxBatches = integer('cleanupMaxBatches', options.cleanupMaxBatches ?? 20, 1, 10_000);
  const runLeaseMs = integer('runLeaseMs', options.runLeaseMs ?? 300_000, 1_000);
  knownKeys('schedules', options.schedules ?? {}, Object.keys(DEFAULT_SCHEDULES));
  const extra = options.jobs ?? {};
  for (const [job, spec] of Object.entries(extra)) {
    if (job in DEFAULT_SCHEDULES)
      throw new InvalidOptionError(`jobs.${job}: '${job}' is a built-in job; configure it with schedules.${job}`);
    if (!/^[a-z][a-z0-9-]{0,40}$/.test(job))
      throw new InvalidOptionError(`jobs: job names must match /^[a-z][a-z0-9-]{0,40}$/, got '${job}'`);
    if (typeof spec?.run !== 'function')
      throw new InvalidOptionError(`jobs.${job}.run must be a function returning a Promise<number>`);
  }
  const schedules: Record<string, string | false> = {
    ...DEFAULT_SCHEDULES,
    ...(options.schedules ?? {}),
    ...Object.fromEntries(Object.entries(extra).map(([job, spec]) => [job, spec.schedule])),
  };
  for (const [job, expression] of Object.entries(schedules)) {
    if (expression !== false && (typeof expression !== 'string' || !cron.validate(expression))) {
      throw new InvalidOptionError(
        `schedules.${job} must be a node-cron expression (e.g. '*/5 * * * * *') or false, got ${JSON.stringify(expression)}`,
      );
    }
  }
  const coordinator = createRunCoordinator(outbox, instanceId);
  const inFlight = new Set<Promise<unknown>>();
  let tasks: ScheduledTask[] = [];

  const jobs: Record<string, () => Promise<number>> = {
    ...Object.fromEntries(Object.entries(extra).map(([job, spec]) => [job, spec.run])),
    checkback: () => runCheckBack(outbox),
    async cleanup() {
      let total = 0;
      for (let i = 0; i < cleanupMaxBatches; i++) {
        const [row] = await run<{ deleted: number }>(o.knex, deletePublishedBatch(o, retentionMs, cleanupBatchSize));
        total += row?.deleted ?? 0;
        if ((row?.deleted ?? 0) < cleanupBatchSize) break;
      }
      counters.cleaned += total;
      if (total > 0) events.emit('cleanup:deleted', { deleted: total });
      return total;
    },
    async sweep() {
      const [count] = await run<{ dead: number }>(o.knex, countDead(o));
      const dead = count?.dead ?? 0;
      if (dead > 0) {
        const [oldest] = await run<{ id: string }>(o.knex, selectDead(o, 1, null, null));
        events.emit('sweep:dead', { dead, oldestDeadId: oldest?.id ?? null });
      }
      return dead;
    },
    async 'lease-recovery'() {
      const [row] = await run<{ pruned: number; freed: number }>(o.knex, pruneLeases(o, 3_600_000));
      return (row?.pruned ?? 0) + (row?.freed ?? 0);
    },
  };

  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    return promise.finally(() => inFlight.delete(promise));
  };

  return {
    coordinator,
    start() {
      if (tasks.length > 0) return;
      tasks = Object.keys(jobs)
        .filter((job) => schedules[job] !== false)
        .map((job) =>
          cron.schedule(
            schedules[job] as string,
            (context) => {
              const started = Date.now();
              return track(
                jobs[job]!().then(
                  (result) =>
                    events.emit('scheduler:ran', {
                      job,
                      instanceId,
                      slot: context.date,
                      result,
                      durationMs: Date.now() - started,
                    }),
                  (error: unknown) =>
                    events.emit('scheduler:error', {
                      job,
                      error: error instanceof Error ? error : new Error(String(error)),
                    }),
                ),
              );
            },
            // The name is part of the coordinator key: it must be the same on every instance.
            {
              name: `${o.schema}.${o.table}:${job}`,
              distributed: true,
              runCoordinator: coordinator,
              distributedLease: runLeaseMs,
              noOverlap: true,
            },
          ),
        );
    },
    async stop() {
      const stopping = tasks;
      tasks = [];
      await Promise.all(stopping.map((task) => task.destroy()));
      await Promise.allSettled([...inFlight]);
    },
    runNow(job) {
      const run = jobs[job];
      if (!run) throw new InvalidOptionError(`no job '${job}'; jobs: ${Object.keys(jobs).join(', ')}`);
      return track(run());
    },
  };
}
