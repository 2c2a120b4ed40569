import type { Statement } from './statement.js';

/**
 * Deletes one bounded batch of one consumer's settled inbox rows (processed or dead)
 * older than the retention window, oldest first, through the partial index on settled
 * rows. `retrying` rows are never deleted: their record is still waiting for its next
 * attempt. `skip locked` lets cleanup pass over rows a delivery holds right now.
 * Small batches keep each transaction short; the job runs a bounded number of them
 * per run, once per cluster (see cleanup.ts).
 *
 * Retention must outlast the window in which a record can be redelivered (the topic's
 * retention, if offsets might be reset to the earliest): a message whose inbox row was
 * deleted would be handled again.
 */
export function deleteSettledBatch(table: string, consumer: string, retentionMs: number, batchSize: number): Statement {
  return {
    name: 'inbox.deleteSettledBatch',
    sql: `
      with deleted as (
        delete from ${table}
        where (consumer, message_id) in (
          select consumer, message_id from ${table}
          where consumer = ? and processed_at is not null
            and processed_at < now() - ?::bigint * interval '1 millisecond'
          order by processed_at
          limit ?
          for update skip locked
        )
        returning 1
      )
      select count(*)::int as deleted from deleted`,
    bindings: [consumer, retentionMs, batchSize],
  };
}
