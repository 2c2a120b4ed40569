import type { SagaRow, SagaStatus } from '../state.js';
import type { Statement } from './statement.js';

/**
 * Saga store statements (`<schema>.<table>`, default `eventual.sagas`).
 *
 * Locking: concurrency is optimistic. A reply reads its saga without a lock, advances
 * it in memory and writes it back with `updateSaga`, which names the version it read
 * and bumps it; if another transaction advanced the saga first (a second reply, the
 * sweeper), the update matches no row, the caller throws `SagaConcurrencyError` and
 * the consumer retries the reply against the new state. An update that waits behind
 * another's row lock is re-checked by PostgreSQL against the committed row (READ
 * COMMITTED), so the version check cannot be raced. The sweeper alone takes row locks
 * (`lockDueSagas`, FOR UPDATE SKIP LOCKED): two sweepers never act on the same saga,
 * and a second sweeper takes the others instead of waiting.
 */

/** Rows come back camel-cased, the shape `SagaRow` has. */
const COLUMNS = `id, type, status, step, attempt, data, version, waiting, wake_at as "wakeAt", last_error as "lastError",
  history, created_at as "createdAt", updated_at as "updatedAt", trace_context as "traceContext"`;

/** Inserts a new saga; an existing id is left alone and nothing returned (starting twice is idempotent). */
export function insertSaga(table: string, saga: Pick<SagaRow, 'id' | 'type'>, dataJson: string): Statement {
  return {
    name: 'saga.insert',
    sql: `insert into ${table} (id, type, status, step, data) values (?, ?, 'running', 0, ?::jsonb)
          on conflict (id) do nothing returning ${COLUMNS}`,
    bindings: [saga.id, saga.type, dataJson],
  };
}

export function selectSaga(table: string, id: string): Statement {
  return { name: 'saga.select', sql: `select ${COLUMNS} from ${table} where id = ?`, bindings: [id] };
}

/**
 * Writes the saga back if it is still at the version it was read at; returns the new
 * version, or nothing. An untraced advance (`traceContext` null) keeps the stored one.
 */
export function updateSaga(table: string, saga: SagaRow, dataJson: string): Statement {
  return {
    name: 'saga.update',
    sql: `update ${table}
          set status = ?, step = ?, attempt = ?, data = ?::jsonb, waiting = ?, wake_at = ?, last_error = ?,
              history = ?::jsonb, trace_context = coalesce(?, trace_context), version = version + 1, updated_at = now()
          where id = ? and version = ?
          returning version`,
    bindings: [
      saga.status,
      saga.step,
      saga.attempt,
      dataJson,
      saga.waiting,
      saga.wakeAt,
      saga.lastError,
      JSON.stringify(saga.history),
      saga.traceContext,
      saga.id,
      saga.version,
    ],
  };
}

/**
 * Sagas whose deadline or retry time has come (on the database's clock), locked for
 * the sweep's transaction; SKIP LOCKED lets a second sweeper take the others. Served
 * by the partial index `<table>_due`.
 */
export function lockDueSagas(table: string, limit: number): Statement {
  return {
    name: 'saga.lockDue',
    sql: `select ${COLUMNS} from ${table}
          where status in ('running', 'compensating') and wake_at is not null and wake_at <= now()
          order by wake_at limit ? for update skip locked`,
    bindings: [limit],
  };
}

export interface SagaFilter {
  status: SagaStatus | null;
  type: string | null;
  afterId: string | null;
  limit: number;
}

/** A page of sagas in id order, optionally of one status and/or type. */
export function listSagas(table: string, { status, type, afterId, limit }: SagaFilter): Statement {
  return {
    name: 'saga.list',
    sql: `select ${COLUMNS} from ${table}
          where (?::text is null or status = ?::text) and (?::text is null or type = ?::text)
            and (?::text is null or id > ?::text)
          order by id limit ?`,
    bindings: [status, status, type, type, afterId, afterId, limit],
  };
}

export function countSagasByStatus(table: string): Statement {
  return {
    name: 'saga.countByStatus',
    sql: `select status, count(*)::int as count from ${table} group by status`,
    bindings: [],
  };
}

/**
 * The saga gauges, per type and unsettled status: how many, and the age of the oldest.
 * Settled sagas (`completed`, `compensated`) are left out: they grow with history, and
 * counting them would read the whole table at every interval; the `(status, updated_at)`
 * index keeps this to the unsettled rows.
 */
export function selectSagaGauges(table: string): Statement {
  return {
    name: 'saga.selectGauges',
    sql: `
      select type, status, count(*)::int as count,
        coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as oldest_s
      from ${table}
      where status in ('running', 'compensating', 'failed')
      group by type, status`,
    bindings: [],
  };
}
