import type { Knex } from 'knex';
import cron, { type ScheduledTask } from 'node-cron';
import { asError, InvalidOptionError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import { type Lifecycle, lifecycle } from '../lifecycle.js';
import { type Logger, stderrLogger } from '../logger.js';
import { defaultInstanceId } from '../names.js';
import { integer, knownKeys, nonEmptyString } from '../validate.js';
import { createRunCoordinator, type PostgresRunCoordinator } from './run-coordinator.js';

/** A job run periodically, once per cluster per scheduled slot. */
export interface PeriodicJob {
  /** Unique in its scheduler: what `runNow()` and the events call it, e.g. `checkback`. */
  name: string;
  /**
   * What makes two instances' runs the same run: the node-cron task name, and with it
   * the lease row (`cron:<key>`). The same on every instance of the cluster, different
   * for different outboxes or consumers, e.g. `eventual.outbox:checkback`. Default `name`.
   */
  key?: string;
  /** node-cron expression (seconds allowed), or `false` to not schedule it (runNow still works). */
  schedule: string | false;
  /** One run; resolves a count for the `scheduler:ran` event (rows deleted, messages checked...). */
  run(): Promise<number>;
}

/** Options of `createScheduler`; an unknown key or an invalid job throws `InvalidOptionError`. */
export interface SchedulerOptions {
  /** The database holding the lease table. */
  knex: Knex;
  /** Quoted, schema-qualified lease table `(name, owner, token, expires_at, last_slot)`. */
  leasesTable: string;
  /**
   * The jobs it runs, checked at creation: names unique, `run` a function, `schedule` a
   * node-cron expression or `false`.
   */
  jobs: readonly PeriodicJob[];
  /** Names this instance in the leases and events. Default `<hostname>-<pid>-<random>`. */
  instanceId?: string;
  /** How long a run may hold its cluster-wide lease (node-cron `distributedLease`). Default 5 min. */
  runLeaseMs?: number;
  /** Where failed runs and throwing listeners are logged. Default `stderrLogger`. */
  logger?: Logger;
}

/** The scheduler's events, for scheduled runs only (`runNow()` reports to its caller). */
export interface SchedulerEventMap {
  /** A scheduled job ran on this instance (it won the slot for the whole cluster). */
  'scheduler:ran': { job: string; instanceId: string; slot: Date; result: number; durationMs: number };
  /**
   * A scheduled run on this instance rejected, or freeing its lease afterwards failed;
   * also logged as an error. The next slot runs as usual.
   */
  'scheduler:error': { job: string; instanceId: string; error: Error };
}

/** Periodic jobs on node-cron, each scheduled run once per cluster; `createScheduler` makes one. */
export interface Scheduler extends Lifecycle {
  /** Names this instance in the leases and events. */
  readonly instanceId: string;
  /** The run coordinator of its tasks: `tokenFor(key)` is the fencing token of a job's run in progress. */
  readonly coordinator: PostgresRunCoordinator;
  /** The names of its jobs. */
  readonly jobs: readonly string[];
  /** Runs a job now on this instance, outside the schedule (and without the coordinator). */
  runNow(job: string): Promise<number>;
  /** Adds a listener and returns the function that removes it; a listener that throws is logged once and ignored. */
  on<E extends keyof SchedulerEventMap>(event: E, listener: (payload: SchedulerEventMap[E]) => void): () => void;
}

/**
 * node-cron drives periodic jobs; each scheduled run executes once per cluster through
 * the PostgreSQL run coordinator, however many instances schedule it. One scheduler
 * per service runs every package's jobs (check-back, cleanup, inbox retention, saga
 * deadlines): `stop()` stops scheduling and waits for runs in progress.
 */
export function createScheduler(options: SchedulerOptions): Scheduler {
  knownKeys('createScheduler', options, ['knex', 'leasesTable', 'jobs', 'instanceId', 'runLeaseMs', 'logger']);
  const instanceId = nonEmptyString('instanceId', options.instanceId ?? defaultInstanceId());
  const runLeaseMs = integer('runLeaseMs', options.runLeaseMs ?? 300_000, 1_000);
  const jobs = new Map<string, PeriodicJob>();
  for (const job of options.jobs) {
    nonEmptyString('job name', job?.name);
    if (jobs.has(job.name)) throw new InvalidOptionError(`the scheduler has two jobs named '${job.name}'`);
    if (typeof job.run !== 'function')
      throw new InvalidOptionError(`job '${job.name}' needs run: () => Promise<number>`);
    if (job.schedule !== false && (typeof job.schedule !== 'string' || !cron.validate(job.schedule)))
      throw new InvalidOptionError(
        `job '${job.name}': schedule must be a node-cron expression (e.g. '*/5 * * * * *') or false, got ${JSON.stringify(job.schedule)}`,
      );
    jobs.set(job.name, job);
  }
  const logger = options.logger ?? stderrLogger;
  const events = new TypedEmitter<SchedulerEventMap>('scheduler', logger);
  events.on('scheduler:error', ({ job, error }) =>
    logger({
      level: 'error',
      namespace: 'scheduler',
      message: `job ${job} failed: ${error.message}`,
      error,
      instanceId,
    }),
  );
  const coordinator = createRunCoordinator(options.knex, options.leasesTable, instanceId);
  const inFlight = new Set<Promise<unknown>>();
  let tasks: ScheduledTask[] = [];
  let scheduling = false;
  /**
   * What node-cron sees: no slot is claimed once stop() began, and every claim in
   * flight is awaited by stop(), so no run starts after the scheduler stopped.
   */
  const gate: typeof coordinator = {
    ...coordinator,
    shouldRun: (key, ttlMs) =>
      scheduling ? track(Promise.resolve(coordinator.shouldRun(key, ttlMs))) : Promise.resolve(false),
  };

  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    return promise.finally(() => inFlight.delete(promise));
  };

  const scheduled = (job: PeriodicJob, schedule: string): ScheduledTask =>
    cron.schedule(
      schedule,
      (context) => {
        const started = Date.now();
        // A slot won just as stop() began: give its lease back without running it.
        if (!scheduling) return track(coordinator.finish(job.key ?? job.name).catch(() => {}));
        return track(
          job
            .run()
            .then(
              (result) =>
                events.emit('scheduler:ran', {
                  job: job.name,
                  instanceId,
                  slot: context.date,
                  result,
                  durationMs: Date.now() - started,
                }),
              (error: unknown) => events.emit('scheduler:error', { job: job.name, instanceId, error: asError(error) }),
            )
            // The run's lease is freed here, inside what stop() awaits, not by node-cron's
            // onComplete after stop() returned (on a pool that may be gone by then).
            .then(() => coordinator.finish(job.key ?? job.name))
            .catch((error: unknown) =>
              events.emit('scheduler:error', { job: job.name, instanceId, error: asError(error) }),
            ),
        );
      },
      // The name is the coordinator's key: the same on every instance.
      {
        name: job.key ?? job.name,
        distributed: true,
        runCoordinator: gate,
        distributedLease: runLeaseMs,
        noOverlap: true,
      },
    );

  const parts = lifecycle(`scheduler ${instanceId}`, {
    async start() {
      scheduling = true;
      tasks = [...jobs.values()].flatMap((job) => (job.schedule === false ? [] : [scheduled(job, job.schedule)]));
    },
    async stop() {
      scheduling = false;
      const stopping = tasks;
      tasks = [];
      await Promise.all(stopping.map((task) => task.destroy()));
      // A claim that was in flight may still start a callback (node-cron calls it a turn
      // after the claim resolved): wait until nothing is left in flight.
      do {
        await Promise.allSettled([...inFlight]);
        await new Promise((resolve) => setImmediate(resolve));
      } while (inFlight.size > 0);
    },
  });

  return {
    instanceId,
    coordinator,
    jobs: [...jobs.keys()],
    get state() {
      return parts.state;
    },
    start: () => parts.start(),
    stop: () => parts.stop(),
    runNow(name) {
      const job = jobs.get(name);
      if (!job) throw new InvalidOptionError(`no job '${name}'; jobs: ${[...jobs.keys()].join(', ')}`);
      return track(job.run());
    },
    on: (event, listener) => events.on(event, listener),
  };
}
