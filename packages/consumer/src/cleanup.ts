import { createRunCoordinator } from '@eventual/outbox';
import cron, { type ScheduledTask } from 'node-cron';
import { asError } from './errors.js';
import type { ConsumerCounters, Events } from './events.js';
import type { ResolvedConsumerOptions } from './options.js';
import { deleteSettledBatch } from './sql/cleanup.js';
import { run } from './sql/statement.js';

export interface InboxCleanup {
  start(): void;
  /** Stops scheduling and waits for a run in progress to finish. */
  stop(): Promise<void>;
  /** One cleanup run now, on this instance, outside the schedule; returns the rows deleted. */
  runNow(): Promise<number>;
}

/**
 * Retention cleanup of this consumer's settled inbox rows, driven by node-cron. Each
 * scheduled run executes once per cluster through the outbox's PostgreSQL run
 * coordinator (a lease row in the consuming service's outbox tables), however many
 * instances schedule it. A run deletes at most `maxBatches` batches of `batchSize`.
 */
export function createInboxCleanup(
  o: ResolvedConsumerOptions,
  events: Events,
  counters: ConsumerCounters,
): InboxCleanup {
  const { keepMs, schedule, batchSize, maxBatches, runLeaseMs } = o.retention;
  const inFlight = new Set<Promise<unknown>>();
  let task: ScheduledTask | undefined;

  async function clean(): Promise<number> {
    let total = 0;
    for (let i = 0; i < maxBatches; i++) {
      const [row] = await run<{ deleted: number }>(o.knex, deleteSettledBatch(o.inboxTable, o.name, keepMs, batchSize));
      total += row?.deleted ?? 0;
      if ((row?.deleted ?? 0) < batchSize) break;
    }
    if (total > 0) events.emit('inbox:cleaned', { consumer: o.name, deleted: total });
    return total;
  }

  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    return promise.finally(() => inFlight.delete(promise));
  };

  return {
    start() {
      if (task || schedule === false) return;
      task = cron.schedule(
        schedule,
        () =>
          track(
            clean().catch((error: unknown) => {
              counters.errors += 1;
              events.emit('consumer:error', { consumer: o.name, error: asError(error), fatal: false });
            }),
          ),
        {
          // The name is the coordinator's key: the same on every instance of this consumer.
          name: `${o.schema}.${o.table}:cleanup:${o.name}`,
          distributed: true,
          runCoordinator: createRunCoordinator(o.outbox, o.instanceId),
          distributedLease: runLeaseMs,
          noOverlap: true,
        },
      );
    },
    async stop() {
      const stopping = task;
      task = undefined;
      await stopping?.destroy();
      await Promise.allSettled([...inFlight]);
    },
    runNow: () => track(clean()),
  };
}
