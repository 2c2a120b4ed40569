import { EventualError, errorMessage, schemaTranslator } from '@eventual/core';
import type { JsonValue, Message } from '@eventual/outbox';

declare module '@eventual/core' {
  interface EventualErrorCodes {
    saga_concurrent_update: SagaConcurrencyError;
    invalid_saga_data: InvalidSagaDataError;
    saga_state: SagaStateError;
    invalid_saga_reply: InvalidReplyError;
    malformed_saga_message: MalformedSagaMessageError;
    command_rejected: CommandRejected;
  }
}

/** The saga was changed by someone else between read and write; retrying re-reads it. */
export class SagaConcurrencyError extends EventualError {
  override name = 'SagaConcurrencyError';
  constructor(sagaId: string) {
    super('saga_concurrent_update', `saga ${sagaId} was advanced concurrently; retry with a fresh read`, {
      retriable: true,
    });
  }
}

/** Saga data that JSON would not give back as it was: refused where it would be stored. */
export class InvalidSagaDataError extends EventualError {
  override name = 'InvalidSagaDataError';
  /** Where the data was refused, e.g. `saga order-fulfilment, start`. */
  readonly where: string;
  constructor(where: string, problem: string) {
    super('invalid_saga_data', `${where}: ${problem}`, { retriable: false });
    this.where = where;
  }
}

/** The request does not fit the saga's state (e.g. resuming a saga that has not failed). */
export class SagaStateError extends EventualError {
  override name = 'SagaStateError';
  /** The saga the request was about. */
  readonly sagaId: string;
  constructor(sagaId: string, message: string) {
    super('saga_state', message, { retriable: false });
    this.sagaId = sagaId;
  }
}

/**
 * A step's `parse` rejected a reply. Non-retriable: the consumer dead-letters the
 * reply record with this message, and the saga is left as it was (still waiting).
 */
export class InvalidReplyError extends EventualError {
  override name = 'InvalidReplyError';
  constructor(sagaType: string, step: string, outcome: string, cause: unknown) {
    super(
      'invalid_saga_reply',
      `saga ${sagaType}, step '${step}': the ${outcome} reply was rejected by its parse function: ${errorMessage(cause)}`,
      { retriable: false, cause },
    );
  }
}

/**
 * A message handed to a saga handler lacks the saga headers (or has wrong ones): it is
 * not a saga command or reply, and no retry can make it one, so the consumer
 * dead-letters it at once.
 */
export class MalformedSagaMessageError extends EventualError {
  override name = 'MalformedSagaMessageError';
  constructor(message: Message<unknown>, what: 'command' | 'reply', required: string) {
    super(
      'malformed_saga_message',
      `message ${message.id} (${message.type}) is not a saga ${what}: ${required} headers are required`,
      { retriable: false },
    );
  }
}

/**
 * Throw from a participant command handler to answer "failure" (insufficient funds,
 * out of stock). Everything the handler wrote is rolled back (it runs in a
 * savepoint), the failure reply is sent, and the record counts as processed. With
 * `retriable: true` the orchestrator may send the command again (per its retry
 * policy) and the failure is not remembered; otherwise it is final for this step.
 * A rejected compensation is never final: the orchestrator retries it with backoff.
 */
export class CommandRejected extends EventualError {
  override name = 'CommandRejected';
  /** The failure reply's payload: `{ reason, ...options.reply }`. */
  readonly reply: JsonValue;
  constructor(reason: string, options: { reply?: { [key: string]: JsonValue }; retriable?: boolean } = {}) {
    super('command_rejected', reason, { retriable: options.retriable ?? false });
    this.reply = { reason, ...(options.reply ?? {}) };
  }
}

export const translateSagaStoreError = schemaTranslator(
  'saga store',
  'run orchestrator.migrate() or add sagaMigrations() to your knex migrations',
);

export const translateParticipantLogError = schemaTranslator(
  'saga participant log',
  'run participant.migrate(knex) or add participantMigrations() to your knex migrations',
);
