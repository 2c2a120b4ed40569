/**
 * The saga wire protocol, in message headers, so participants need nothing but a
 * consumer and an outbox. Commands carry `saga-*` and `reply-to`; replies (type
 * `SagaReply`, keyed by saga id so one saga's replies stay in order) echo the saga
 * headers and add the outcome.
 */
export const SAGA_HEADER = {
  id: 'saga-id',
  type: 'saga-type',
  step: 'saga-step',
  phase: 'saga-phase',
  attempt: 'saga-attempt',
  replyTo: 'reply-to',
  outcome: 'saga-outcome',
  retriable: 'saga-retriable',
} as const;

export const SAGA_REPLY_TYPE = 'SagaReply';

export type SagaPhase = 'forward' | 'compensate';
export type ReplyOutcome = 'success' | 'failure';
