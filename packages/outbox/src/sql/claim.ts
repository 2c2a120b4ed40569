import type { ResolvedOutboxOptions } from '../options.js';
import type { Statement } from './statement.js';

export interface ClaimedRow {
  id: string;
  topic: string;
  key: string;
  type: string;
  /** The payload exactly as the producer serialised it (json::text, not re-encoded). */
  payload: string;
  headers: Record<string, string>;
  shard: number;
  attempts: number;
}

/**
 * The next batch for the shards this relay holds, in id order (= per-key order).
 *
 * No row lock and no "claimed" marker: a shard is relayed by one lease holder at a
 * time, so nobody else claims these rows; a holder that lost its lease may still
 * publish (a duplicate consumers drop by id) but cannot mark (see mark.ts).
 *
 * Head-of-line per key: a row is held back while an earlier pending row of the same
 * key is backing off, so a retried message is never overtaken by a later one of its
 * key. Other keys keep flowing.
 *
 * `waiting`, the rows backing off, comes from a range scan of the available_at index
 * (migration 002) and is tiny, so the check costs the same with or without table
 * statistics. The plain NOT EXISTS probe was planned as a seq scan of the whole table
 * per claim (50-100 ms on a 200,000-row backlog, bench/) and, on a fresh table that
 * has no statistics yet, as a probe for every pending row: 17-20 s per claim for a
 * 200,000-row burst, against 0.3 s now. The CTE reads the statement's snapshot and
 * now(), so the result is exactly that of the plain NOT EXISTS.
 */
export function claimBatch(o: ResolvedOutboxOptions, shards: number[], limit: number): Statement {
  return {
    name: 'outbox.claimBatch',
    sql: `
      with waiting as materialized (
        select key, id from ${o.tables.messages} where state = 'pending' and available_at > now()
      )
      select m.id, m.topic, m.key, m.type, m.payload::text as payload, m.headers, m.shard, m.attempts
      from ${o.tables.messages} m
      where m.state = 'pending' and m.shard = any(?::int[]) and m.available_at <= now()
        and not exists (select 1 from waiting w where w.key = m.key and w.id < m.id)
      order by m.id
      limit ?`,
    bindings: [shards, limit],
  };
}
