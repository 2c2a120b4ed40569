import type { ResolvedOutboxOptions } from '../options.js';
import type { Statement } from './statement.js';

/**
 * Deletes one bounded batch of published rows older than the retention window, oldest
 * first, through the partial index on published rows. Small batches keep each
 * transaction short (no long lock, no WAL burst); the scheduler runs a bounded number
 * of them per run, once per cluster.
 */
export function deletePublishedBatch(o: ResolvedOutboxOptions, retentionMs: number, batchSize: number): Statement {
  return {
    name: 'outbox.deletePublishedBatch',
    sql: `
      with deleted as (
        delete from ${o.tables.messages}
        where id in (
          select id from ${o.tables.messages}
          where state = 'published' and published_at < now() - ?::bigint * interval '1 millisecond'
          order by published_at
          limit ?
          for update skip locked
        )
        returning 1
      )
      select count(*)::int as deleted from deleted`,
    bindings: [retentionMs, batchSize],
  };
}
