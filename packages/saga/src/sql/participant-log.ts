import type { SagaPhase } from '../protocol.js';
import type { Statement } from './statement.js';

/**
 * The participant log (`<schema>.<table>`, default `eventual.saga_participant_log`):
 * one row per (participant, saga, step, phase) a participant handled.
 *
 * Locking: the commands of one saga step at one participant are serialised by
 * `lockStep`, a transaction-scoped advisory lock on a hash of (participant, saga,
 * step), taken before the step's log is read. Locking the log rows instead (SELECT
 * ... FOR UPDATE) locks nothing the first time a step arrives, because there is no
 * row yet: a forward command and its compensation handled at the same moment (they
 * can travel on different partitions) would both find an empty log, the forward
 * would apply, the compensation would record "nothing to undo", and the undo would be
 * lost for good. With the step locked, the second waits for the first to commit and
 * then reads what it recorded. Notes:
 * - `lockStep` and `selectStep` must be two statements: under READ COMMITTED (the
 *   consumer's isolation) each statement reads a fresh snapshot, so the read after
 *   the wait sees the other transaction's row; one statement would keep the snapshot
 *   it took before waiting.
 * - The lock is released by COMMIT or ROLLBACK, so a crashed holder leaves nothing
 *   behind. It is reentrant within a transaction (a batch may hold both phases).
 * - A hash collision only serialises two unrelated steps: slower, never wrong.
 */

export interface ParticipantLogRow {
  outcome: 'success' | 'failure' | 'skipped';
  reply: unknown;
  phase: SagaPhase;
}

export interface StepKey {
  participant: string;
  sagaId: string;
  step: number;
}

/** Waits until no other transaction handles a command of this step, and holds the step until this one ends. */
export function lockStep({ participant, sagaId, step }: StepKey): Statement {
  return {
    name: 'participant.lockStep',
    sql: 'select pg_advisory_xact_lock(hashtextextended(?, 0))',
    bindings: [JSON.stringify(['eventual.saga-step', participant, sagaId, step])],
  };
}

/** Both phases of one saga step at this participant; read after `lockStep`, in its own statement. */
export function selectStep(table: string, { participant, sagaId, step }: StepKey): Statement {
  return {
    name: 'participant.selectStep',
    sql: `select outcome, reply, phase from ${table} where participant = ? and saga_id = ? and step = ?`,
    bindings: [participant, sagaId, step],
  };
}

/** Remembers how this participant answered one phase of a step (primary key: no second answer). */
export function recordStep(
  table: string,
  { participant, sagaId, step }: StepKey,
  entry: { phase: SagaPhase; outcome: ParticipantLogRow['outcome']; reply: unknown; commandId: string },
): Statement {
  return {
    name: 'participant.record',
    sql: `insert into ${table} (participant, saga_id, step, phase, outcome, reply, command_id)
          values (?, ?, ?, ?, ?, ?::jsonb, ?)`,
    bindings: [
      participant,
      sagaId,
      step,
      entry.phase,
      entry.outcome,
      JSON.stringify(entry.reply ?? null),
      entry.commandId,
    ],
  };
}
