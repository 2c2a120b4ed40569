import type { ResolvedOutboxOptions } from '../options.js';
import type { Statement } from './statement.js';

export type Resolution = 'commit' | 'rollback';
export type ResolvedBy = 'producer' | 'checkback' | 'default';

/**
 * Resolves a prepared message. The `state = 'prepared'` guard makes producer and
 * check-back race safely: whichever update commits first wins, the other matches no
 * row and then reads the state to tell its caller what happened. `expectedChecks`
 * (check-back only) also loses to a concurrent check of the same row.
 */
export function resolvePrepared(
  o: ResolvedOutboxOptions,
  id: string,
  resolution: Resolution,
  by: ResolvedBy,
  expectedChecks: number | null,
): Statement {
  return {
    name: 'outbox.resolvePrepared',
    sql: `
      with resolved as (
        update ${o.tables.messages}
        set state = case when ? = 'commit' then 'pending' else 'cancelled' end,
            resolved_by = ?, available_at = now(), next_check_at = null
        where id = ? and state = 'prepared' and (?::int is null or check_count = ?::int)
        returning state
      )
      select state, pg_notify(?, 'enqueued') from resolved`,
    bindings: [resolution, by, id, expectedChecks, expectedChecks, o.channel],
  };
}

/** Reads one message's state, for error messages and inspection. */
export function selectState(o: ResolvedOutboxOptions, id: string): Statement {
  return {
    name: 'outbox.selectState',
    sql: `select state, resolved_by from ${o.tables.messages} where id = ?`,
    bindings: [id],
  };
}

/**
 * Prepared messages due for a check, oldest first. No row lock is held while the
 * checker (often a remote call) runs; the resolution is applied afterwards with the
 * optimistic `check_count` guard above, so a producer's commit in the meantime wins.
 */
export function selectDueForCheck(o: ResolvedOutboxOptions, limit: number): Statement {
  return {
    name: 'outbox.selectDueForCheck',
    sql: `
      select id, topic, key, type, payload, headers, check_count
      from ${o.tables.messages}
      where state = 'prepared' and next_check_at <= now()
      order by next_check_at
      limit ?`,
    bindings: [limit],
  };
}

/** After an `unknown` answer: count the check and schedule the next one. */
export function recordCheck(
  o: ResolvedOutboxOptions,
  id: string,
  expectedChecks: number,
  nextCheckInMs: number,
  note: string,
): Statement {
  return {
    name: 'outbox.recordCheck',
    sql: `
      update ${o.tables.messages}
      set check_count = check_count + 1, next_check_at = now() + ?::bigint * interval '1 millisecond', last_error = ?
      where id = ? and state = 'prepared' and check_count = ?
      returning check_count`,
    bindings: [nextCheckInMs, note, id, expectedChecks],
  };
}
