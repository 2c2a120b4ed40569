import type { SagaPhase } from '../protocol.js';
import type { Statement } from './statement.js';

/**
 * The participant log (`<schema>.<table>`, default `eventual.saga_participant_log`):
 * one row per (participant, saga, step, phase) a participant handled.
 *
 * Locking: `selectStep` reads both phases of one saga step FOR UPDATE, so two
 * commands of the same step that both find rows are serialised on them.
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

/** Both phases of one saga step at this participant, locked against a concurrent command of the same step. */
export function selectStep(table: string, { participant, sagaId, step }: StepKey): Statement {
  return {
    name: 'participant.selectStep',
    sql: `select outcome, reply, phase from ${table} where participant = ? and saga_id = ? and step = ? for update`,
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
