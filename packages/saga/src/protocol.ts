import type { HandlerContext } from '@eventual/consumer';
import { HEADER, type JsonValue, type Message, type MessageInput } from '@eventual/outbox';
import { MalformedSagaMessageError } from './errors.js';

/**
 * The saga wire protocol, in message headers, so participants need nothing but a
 * consumer and an outbox. Commands carry `saga-*` and `reply-to`; replies (type
 * `SagaReply`, keyed by saga id so one saga's replies stay in order) echo the saga
 * headers and add the outcome. This file is the only place that reads or writes them.
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

/** The message type of every saga reply: handle it on the reply topic with `orchestrator.replyHandler`. */
export const SAGA_REPLY_TYPE = 'SagaReply';

/** Which way a saga command goes: `forward` does a step, `compensate` undoes it. */
export type SagaPhase = 'forward' | 'compensate';

/** A consumer handler for saga messages (`consumer.handle(type, handler)`): the orchestrator's replies, a participant's commands. */
export type SagaMessageHandler = (context: Pick<HandlerContext, 'trx' | 'message' | 'outbox'>) => Promise<void>;
/** How a participant answered a command: `success`, or `failure` (a refusal, e.g. `CommandRejected`). */
export type ReplyOutcome = 'success' | 'failure';

/** Which saga, step and phase a command or reply belongs to. */
export interface SagaAddress {
  /** The saga instance's id (`saga-id`). */
  sagaId: string;
  /** The saga definition's name ('' if the sender did not say). */
  sagaType: string;
  /** The step's index in the saga definition, from 0 (`saga-step`). */
  step: number;
  /** The phase of the step the message belongs to (`saga-phase`). */
  phase: SagaPhase;
}

/** The saga headers of a command, as `parseSagaCommand` reads them. */
export interface SagaCommand extends SagaAddress {
  /** The topic the orchestrator consumes replies from. */
  replyTo: string;
}

/** The saga headers of a reply, as `parseSagaReply` reads them. */
export interface SagaReply extends SagaAddress {
  /** The participant's answer (`saga-outcome`). */
  outcome: ReplyOutcome;
  /** A failure the orchestrator may retry (within the step's retry policy). */
  retriable: boolean;
}

/** The headers of the command for one step and phase of a saga. */
export function commandHeaders(command: SagaCommand & { attempt: number }): Record<string, string> {
  return {
    [SAGA_HEADER.id]: command.sagaId,
    [SAGA_HEADER.type]: command.sagaType,
    [SAGA_HEADER.step]: String(command.step),
    [SAGA_HEADER.phase]: command.phase,
    [SAGA_HEADER.attempt]: String(command.attempt),
    [SAGA_HEADER.replyTo]: command.replyTo,
  };
}

/** The saga headers of a command; throws `MalformedSagaMessageError` (non-retriable) if any is missing or wrong. */
export function parseSagaCommand(message: Message<unknown>): SagaCommand {
  const address = parseAddress(message);
  const replyTo = message.headers[SAGA_HEADER.replyTo];
  if (!address || !replyTo)
    throw new MalformedSagaMessageError(message, 'command', 'saga-id, saga-step, saga-phase and reply-to');
  return { ...address, replyTo };
}

/** The saga headers of a reply; throws `MalformedSagaMessageError` (non-retriable) if any is missing or wrong. */
export function parseSagaReply(message: Message<unknown>): SagaReply {
  const address = parseAddress(message);
  const outcome = message.headers[SAGA_HEADER.outcome];
  if (!address || (outcome !== 'success' && outcome !== 'failure'))
    throw new MalformedSagaMessageError(message, 'reply', 'saga-id, saga-step, saga-phase and saga-outcome');
  return { ...address, outcome, retriable: message.headers[SAGA_HEADER.retriable] === 'true' };
}

function parseAddress({ headers }: Message<unknown>): SagaAddress | undefined {
  const sagaId = headers[SAGA_HEADER.id];
  const stepText = headers[SAGA_HEADER.step];
  const step = Number(stepText);
  const phase = headers[SAGA_HEADER.phase];
  if (!sagaId || !stepText || !Number.isInteger(step) || step < 0) return undefined;
  if (phase !== 'forward' && phase !== 'compensate') return undefined;
  return { sagaId, sagaType: headers[SAGA_HEADER.type] ?? '', step, phase };
}

/**
 * The reply to a saga command, as a message ready for `outbox.enqueue` or
 * `outbox.prepare`. Participants built with `createParticipant` never need it; it is
 * for a step whose outcome is only known after work outside the transaction (an
 * external API): prepare the success reply, do the work, then commit or roll it back,
 * and let the outbox's check-back ask the external system if the process dies between.
 */
export function sagaReply(
  command: Message<unknown>,
  outcome: ReplyOutcome,
  payload: JsonValue = {},
  options: { retriable?: boolean } = {},
): MessageInput<JsonValue> {
  const { sagaId, sagaType, step, phase, replyTo } = parseSagaCommand(command);
  return {
    topic: replyTo,
    key: sagaId,
    type: SAGA_REPLY_TYPE,
    payload,
    correlationId: command.headers[HEADER.correlationId] ?? sagaId,
    causationId: command.id,
    headers: {
      [SAGA_HEADER.id]: sagaId,
      [SAGA_HEADER.type]: sagaType,
      [SAGA_HEADER.step]: String(step),
      [SAGA_HEADER.phase]: phase,
      [SAGA_HEADER.outcome]: outcome,
      [SAGA_HEADER.retriable]: String(options.retriable ?? false),
    },
  };
}

/** What a reply says went wrong: its `reason`, or the payload itself, shortened. */
export function replyReason(payload: JsonValue): string {
  if (payload && typeof payload === 'object' && !Array.isArray(payload) && typeof payload.reason === 'string')
    return payload.reason;
  return JSON.stringify(payload ?? null).slice(0, 300);
}
