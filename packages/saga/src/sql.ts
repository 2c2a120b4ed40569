import { statementRunner } from '@eventual/core';
import type { Knex } from 'knex';

const run = statementRunner();

export interface SagaRow {
  id: string;
  type: string;
  status: 'running' | 'compensating' | 'completed' | 'compensated' | 'failed';
  step: number;
  attempt: number;
  data: Record<string, unknown>;
  version: number;
  waiting: 'reply' | 'retry' | null;
  wake_at: Date | null;
  last_error: string | null;
  history: SagaHistoryEntry[];
  created_at: Date;
  updated_at: Date;
}

export interface SagaHistoryEntry {
  at: string;
  step: string;
  phase: 'forward' | 'compensate';
  event: 'ran' | 'sent' | 'succeeded' | 'failed' | 'timed-out' | 'skipped' | 'resumed';
  attempt: number;
  detail?: string;
}

function rows<T>(db: Knex | Knex.Transaction, sql: string, bindings: readonly Knex.RawBinding[]): Promise<T[]> {
  return run<T>(db, { name: 'saga', sql, bindings });
}

/**
 * Saga statements. Concurrency is optimistic: an update names the version it read and
 * bumps it; if another transaction advanced the saga first, it matches no row and the
 * caller retries from a fresh read (the consumer retries the reply record).
 */
export function sagaSql(table: string) {
  return {
    /** Inserts a new saga; an existing id is left alone (starting twice is idempotent). */
    insert: (db: Knex.Transaction, row: Pick<SagaRow, 'id' | 'type' | 'data'>) =>
      rows<SagaRow>(
        db,
        `insert into ${table} (id, type, status, step, data) values (?, ?, 'running', 0, ?::jsonb)
         on conflict (id) do nothing returning *`,
        [row.id, row.type, JSON.stringify(row.data)],
      ),
    select: (db: Knex | Knex.Transaction, id: string) => rows<SagaRow>(db, `select * from ${table} where id = ?`, [id]),
    update: (db: Knex.Transaction, row: SagaRow) =>
      rows<{ version: number }>(
        db,
        `update ${table}
         set status = ?, step = ?, attempt = ?, data = ?::jsonb, waiting = ?, wake_at = ?, last_error = ?,
             history = ?::jsonb, version = version + 1, updated_at = now()
         where id = ? and version = ?
         returning version`,
        [
          row.status,
          row.step,
          row.attempt,
          JSON.stringify(row.data),
          row.waiting,
          row.wake_at,
          row.last_error,
          JSON.stringify(row.history),
          row.id,
          row.version,
        ],
      ),
    /**
     * Sagas whose deadline or retry time has come, locked so that two sweepers (or a
     * sweeper and a reply) never act on the same saga at once; SKIP LOCKED lets a
     * second sweeper take the others.
     */
    lockDue: (db: Knex.Transaction, limit: number) =>
      rows<SagaRow>(
        db,
        `select * from ${table}
         where status in ('running', 'compensating') and wake_at is not null and wake_at <= now()
         order by wake_at limit ? for update skip locked`,
        [limit],
      ),
    list: (db: Knex, status: string | null, type: string | null, limit: number, afterId: string | null) =>
      rows<SagaRow>(
        db,
        `select * from ${table}
         where (?::text is null or status = ?::text) and (?::text is null or type = ?::text) and (?::text is null or id > ?::text)
         order by id limit ?`,
        [status, status, type, type, afterId, afterId, limit],
      ),
    countByStatus: (db: Knex) =>
      rows<{ status: string; count: number }>(
        db,
        `select status, count(*)::int as count from ${table} group by status`,
        [],
      ),
  };
}

export interface ParticipantLogRow {
  outcome: 'success' | 'failure' | 'skipped';
  reply: unknown;
  phase: 'forward' | 'compensate';
}

export function participantSql(table: string) {
  return {
    /** Both phases of one saga step at this participant, locked against a concurrent command of the same step. */
    lockStep: (db: Knex.Transaction, participant: string, sagaId: string, step: number) =>
      rows<ParticipantLogRow>(
        db,
        `select outcome, reply, phase from ${table} where participant = ? and saga_id = ? and step = ? for update`,
        [participant, sagaId, step],
      ),
    record: (
      db: Knex.Transaction,
      participant: string,
      sagaId: string,
      step: number,
      phase: string,
      outcome: string,
      reply: unknown,
      commandId: string,
    ) =>
      rows(
        db,
        `insert into ${table} (participant, saga_id, step, phase, outcome, reply, command_id) values (?, ?, ?, ?, ?, ?::jsonb, ?)`,
        [participant, sagaId, step, phase, outcome, JSON.stringify(reply ?? null), commandId],
      ),
  };
}
