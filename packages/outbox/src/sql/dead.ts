import type { ResolvedOutboxOptions } from '../options.js';
import type { Statement } from './statement.js';

/** Dead messages in id order, paged by `afterId` (keyset pagination stays fast). */
export function selectDead(
  o: ResolvedOutboxOptions,
  limit: number,
  afterId: string | null,
  topic: string | null,
): Statement {
  return {
    name: 'outbox.selectDead',
    sql: `
      select id, topic, key, type, payload, headers, attempts, last_error, created_at
      from ${o.tables.messages}
      where state = 'dead' and (?::uuid is null or id > ?::uuid) and (?::text is null or topic = ?::text)
      order by id
      limit ?`,
    bindings: [afterId, afterId, topic, topic, limit],
  };
}

/**
 * dead -> pending with a fresh attempt budget. Only dead rows move, so requeueing a
 * message twice, or one that was already requeued and published, changes nothing.
 */
export function requeueDead(o: ResolvedOutboxOptions, ids: string[]): Statement {
  return {
    name: 'outbox.requeueDead',
    sql: `
      with requeued as (
        update ${o.tables.messages}
        set state = 'pending', attempts = 0, available_at = now(), last_error = null
        where id = any(?::uuid[]) and state = 'dead'
        returning id
      )
      select id, pg_notify(?, 'enqueued') from requeued`,
    bindings: [ids, o.channel],
  };
}

/** Counts per state and the age of the oldest pending message (the relay's lag). */
export function selectStats(o: ResolvedOutboxOptions): Statement {
  return {
    name: 'outbox.selectStats',
    sql: `
      select
        (select count(*) from ${o.tables.messages} where state = 'pending')::int as pending,
        (select count(*) from ${o.tables.messages} where state = 'prepared')::int as prepared,
        (select count(*) from ${o.tables.messages} where state = 'dead')::int as dead,
        (select coalesce(extract(epoch from now() - min(created_at)) * 1000, 0)
           from ${o.tables.messages} where state = 'pending')::float8 as lag_ms`,
    bindings: [],
  };
}

/** How many messages are dead (the sweep reports it). Uses the partial index on dead rows. */
export function countDead(o: ResolvedOutboxOptions): Statement {
  return {
    name: 'outbox.countDead',
    sql: `select count(*)::int as dead from ${o.tables.messages} where state = 'dead'`,
    bindings: [],
  };
}
