import type { PeriodicJob } from '@eventual/core';
import type { ConsumerCounters, Events } from './events.js';
import type { ResolvedConsumerOptions } from './options.js';
import { deleteSettledBatch } from './sql/cleanup.js';
import { run } from './sql/statement.js';

/** Deletes this consumer's settled inbox rows older than `retention.keepMs`, in bounded batches. */
export async function cleanInbox(o: ResolvedConsumerOptions, events: Events): Promise<number> {
  const { keepMs, batchSize, maxBatches } = o.retention;
  let total = 0;
  for (let i = 0; i < maxBatches; i++) {
    const [row] = await run<{ deleted: number }>(o.knex, deleteSettledBatch(o.inboxTable, o.name, keepMs, batchSize));
    total += row?.deleted ?? 0;
    if ((row?.deleted ?? 0) < batchSize) break;
  }
  if (total > 0) events.emit('inbox:cleaned', { consumer: o.name, instanceId: o.instanceId, deleted: total });
  return total;
}

/**
 * Retention cleanup of this consumer's settled inbox rows as a periodic job, for the
 * service's scheduler (or yours): each scheduled run executes once per cluster through
 * the run coordinator on the outbox's lease table, however many instances schedule it.
 * The key names the inbox table and the consumer, the same on every instance.
 */
export function inboxCleanupJob(o: ResolvedConsumerOptions, events: Events, counters: ConsumerCounters): PeriodicJob {
  return {
    name: `inbox-cleanup:${o.name}`,
    key: `${o.schema}.${o.table}:cleanup:${o.name}`,
    schedule: o.retention.schedule,
    run: async () => {
      try {
        return await cleanInbox(o, events);
      } catch (error) {
        counters.errors += 1;
        throw error;
      }
    },
  };
}
