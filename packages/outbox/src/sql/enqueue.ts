import type { PreparedRow } from '../message.js';
import type { ResolvedOutboxOptions } from '../options.js';
import type { Statement } from './statement.js';

/**
 * Inserts messages in one round trip: unnest() turns the column arrays into rows (so
 * the text is the same for any number of messages, and runs as one named prepared
 * statement per connection: parsed once, then planned from its cached plan), and the
 * shard comes from the stored shard count (a scalar subquery: if the settings row is
 * missing the insert fails on NOT NULL instead of writing rows no relay would ever
 * claim). Returns the distinct shards written.
 *
 * No NOTIFY here by default: a transaction that has run NOTIFY takes a database-wide
 * lock at commit and holds it through its WAL flush, so every notifying transaction of
 * the database commits one after another, without group commit. The outbox sends one
 * NOTIFY after the caller's transaction committed instead (`notifyShards`, see
 * notifier.ts). Only when the transaction's outcome cannot be observed does the insert
 * carry the NOTIFY itself (`notify`); NOTIFY is transactional, so that one too is
 * delivered only on commit. Either way it is only a hint; relays also poll.
 *
 * Prepared messages get `next_check_at`, the first time the check-back may ask about them.
 */
export function insertMessages(
  o: ResolvedOutboxOptions,
  rows: PreparedRow[],
  state: 'pending' | 'prepared',
  checkAfterMs: number | null,
  notify: boolean,
): Statement {
  const column = <T>(pick: (row: PreparedRow) => T) => rows.map(pick);
  const result =
    notify && state === 'pending'
      ? `select pg_notify(?, (select string_agg(distinct shard::text, ',') from inserted))
         where exists (select 1 from inserted)`
      : 'select distinct shard from inserted';
  return {
    name: 'outbox.insertMessages',
    prepared: true,
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
      ${result}`,
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
      ...(notify && state === 'pending' ? [o.channel] : []),
    ],
  };
}

/**
 * Wakes the relays for these shards (payload `3,17`: a relay wakes only the lanes that
 * have work), outside any transaction, after the transactions that wrote them committed.
 * A payload too long for NOTIFY (8,000 bytes) is sent empty, which wakes every lane.
 */
export function notifyShards(o: ResolvedOutboxOptions, shards: number[]): Statement {
  const payload = shards.join(',');
  return {
    name: 'outbox.notifyShards',
    sql: 'select pg_notify(?, ?)',
    bindings: [o.channel, payload.length < 7_000 ? payload : ''],
  };
}
