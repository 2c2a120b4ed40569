import type { ResolvedOutboxOptions } from '../options.js';
import type { Statement } from './statement.js';

/**
 * Every outbox gauge in one statement, per topic: pending, the age of the oldest
 * pending message, prepared, prepared and due for the check-back, dead. Published and
 * cancelled rows (the bulk of the table) are never read: the `or` of the three states
 * lets the planner answer from the partial indexes on those states (a BitmapOr of
 * `_pending_available`, `_prepared_due` and `_dead_id`, checked with EXPLAIN on 50,000
 * rows), so the cost follows the backlog, not the retention window of published rows.
 */
export function selectGauges(o: ResolvedOutboxOptions): Statement {
  return {
    name: 'outbox.selectGauges',
    sql: `
      select topic,
        count(*) filter (where state = 'pending')::int as pending,
        coalesce(extract(epoch from now() - min(created_at) filter (where state = 'pending')), 0)::float8
          as oldest_pending_s,
        count(*) filter (where state = 'prepared')::int as prepared,
        count(*) filter (where state = 'prepared' and next_check_at <= now())::int as checkback_due,
        count(*) filter (where state = 'dead')::int as dead
      from ${o.tables.messages}
      where state = 'pending' or state = 'prepared' or state = 'dead'
      group by topic`,
    bindings: [],
  };
}
