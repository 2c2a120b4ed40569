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
 * key. Other keys keep flowing. Served by the partial indexes on pending rows, which
 * stay small however many published rows the table keeps.
 */
export function claimBatch(o: ResolvedOutboxOptions, shards: number[], limit: number): Statement {
  return {
    sql: `
      select m.id, m.topic, m.key, m.type, m.payload::text as payload, m.headers, m.shard, m.attempts
      from ${o.tables.messages} m
      where m.state = 'pending' and m.shard = any(?::int[]) and m.available_at <= now()
        and not exists (
          select 1 from ${o.tables.messages} b
          where b.state = 'pending' and b.key = m.key and b.id < m.id and b.available_at > now()
        )
      order by m.id
      limit ?`,
    bindings: [shards, limit],
  };
}
