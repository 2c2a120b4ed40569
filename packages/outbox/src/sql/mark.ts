import type { ResolvedOutboxOptions } from '../options.js';
import type { Statement } from './statement.js';

/**
 * The fence every relay write goes through: the shards whose lease this owner still
 * holds with the token it claimed under. `for share` locks those lease rows until the
 * write commits, so a takeover (an UPDATE of the lease row) waits for it and cannot
 * slip in between the check and the write.
 */
function fence(o: ResolvedOutboxOptions): string {
  return `
    valid as (
      select f.shard
      from unnest(?::int[], ?::bigint[]) as f(shard, token)
      join ${o.tables.leases} l on l.name = 'relay:shard:' || f.shard
      where l.owner = ? and l.token = f.token and l.expires_at > now()
      for share of l
    )`;
}

export interface Fence {
  owner: string;
  shards: number[];
  tokens: number[];
}

/** pending -> published (or deleted, `mode: 'delete'`) for acknowledged rows, fenced. */
export function markPublished(o: ResolvedOutboxOptions, ids: string[], f: Fence, mode: 'mark' | 'delete'): Statement {
  const write =
    mode === 'delete'
      ? `delete from ${o.tables.messages} m
         where m.id = any(?::uuid[]) and m.state = 'pending' and m.shard in (select shard from valid)
         returning m.id`
      : `update ${o.tables.messages} m
         set state = 'published', published_at = now(), attempts = m.attempts + 1, last_error = null
         where m.id = any(?::uuid[]) and m.state = 'pending' and m.shard in (select shard from valid)
         returning m.id`;
  return {
    name: 'outbox.markPublished',
    sql: `with ${fence(o)} ${write}`,
    bindings: [f.shards, f.tokens, f.owner, ids],
  };
}

/**
 * Records a failed publication, fenced: one more attempt, the next try after its own
 * jittered delay, and `dead` once `maxAttempts` is reached or the error is permanent.
 */
export function markFailed(
  o: ResolvedOutboxOptions,
  ids: string[],
  delaysMs: number[],
  error: string,
  permanent: boolean,
  maxAttempts: number,
  f: Fence,
): Statement {
  return {
    name: 'outbox.markFailed',
    sql: `
      with ${fence(o)}
      update ${o.tables.messages} m
      set attempts = m.attempts + 1,
          last_error = ?,
          state = case when ?::boolean or m.attempts + 1 >= ? then 'dead' else 'pending' end,
          available_at = now() + d.delay_ms * interval '1 millisecond'
      from unnest(?::uuid[], ?::bigint[]) as d(id, delay_ms)
      where m.id = d.id and m.state = 'pending' and m.shard in (select shard from valid)
      returning m.id, m.topic, m.state, m.attempts`,
    bindings: [f.shards, f.tokens, f.owner, error, permanent, maxAttempts, ids, delaysMs],
  };
}
