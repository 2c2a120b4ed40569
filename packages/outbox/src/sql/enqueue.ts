import type { PreparedRow } from '../message.js';
import type { ResolvedOutboxOptions } from '../options.js';
import type { Statement } from './statement.js';

/**
 * Inserts messages in one round trip: unnest() turns the column arrays into rows, the
 * shard comes from the stored shard count (a scalar subquery: if the settings row is
 * missing the insert fails on NOT NULL instead of writing rows no relay would ever
 * claim), and pg_notify wakes relays; its payload lists the shards written (e.g.
 * `3,17`), so a relay wakes only the lane that has work. NOTIFY is transactional: it
 * is delivered only if the caller's transaction commits, and it is only a hint;
 * relays also poll.
 *
 * Prepared messages get `next_check_at`, the first time the check-back may ask about them.
 */
export function insertMessages(
  o: ResolvedOutboxOptions,
  rows: PreparedRow[],
  state: 'pending' | 'prepared',
  checkAfterMs: number | null,
): Statement {
  const column = <T>(pick: (row: PreparedRow) => T) => rows.map(pick);
  return {
    name: 'outbox.insertMessages',
    sql: `
      with inserted as (
        insert into ${o.tables.messages} (id, topic, key, type, payload, headers, shard, state, next_check_at)
        select u.id, u.topic, u.key, u.type, u.payload::json, u.headers::jsonb,
               (u.key_hash % (select shard_count from ${o.tables.settings}))::int,
               ?, case when ?::bigint is null then null else now() + ?::bigint * interval '1 millisecond' end
        from unnest(?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[])
             as u(id, topic, key, type, payload, headers, key_hash)
        returning shard
      )
      select pg_notify(?, (select string_agg(distinct shard::text, ',') from inserted))
      where ? = 'pending' and exists (select 1 from inserted)`,
    bindings: [
      state,
      checkAfterMs,
      checkAfterMs,
      column((r) => r.message.id),
      column((r) => r.message.topic),
      column((r) => r.message.key),
      column((r) => r.message.type),
      column((r) => r.payloadJson),
      column((r) => r.headersJson),
      column((r) => r.keyHash),
      o.channel,
      state,
    ],
  };
}
