import { EventualError, schemaTranslator } from '@eventual/core';

declare module '@eventual/core' {
  interface EventualErrorCodes {
    non_retriable: NonRetriableError;
    illegal_inbox_transition: IllegalInboxTransitionError;
    transaction_aborted: TransactionAbortedError;
    transaction_owned_by_consumer: TransactionOwnedByConsumerError;
  }
}

/**
 * Throw this from a handler when retrying cannot help (the message asks for something
 * impossible, a business rule rejects it): the record is dead-lettered at once instead
 * of after `maxAttempts`. Any error with `retriable === false` has the same effect,
 * e.g. the outbox's `InvalidMessageError`; other errors are retried with backoff.
 * `code` is always `non_retriable`; your own stable code for the case goes in
 * `businessCode`, and the dead letter's `dlq-error-code` header carries it.
 */
export class NonRetriableError extends EventualError {
  override name = 'NonRetriableError';
  /** The caller's own code for the case, e.g. `refund_too_large`. */
  readonly businessCode: string | undefined;
  constructor(message: string, options: { businessCode?: string; cause?: unknown } = {}) {
    super('non_retriable', message, { retriable: false, cause: options.cause });
    this.businessCode = options.businessCode;
  }
}

/** The database refused an inbox state change (only `retrying` rows may change state). */
export class IllegalInboxTransitionError extends EventualError {
  override name = 'IllegalInboxTransitionError';
  constructor(detail: string, cause?: unknown) {
    super('illegal_inbox_transition', `illegal inbox state transition: ${detail}`, { retriable: false, cause });
  }
}

/**
 * The handler's transaction can no longer commit: a statement failed inside it and the
 * handler caught the error and returned normally. PostgreSQL would turn the COMMIT into
 * a silent ROLLBACK, so without this check the record's offset would be committed with
 * nothing applied. Retried like any handler failure.
 */
export class TransactionAbortedError extends EventualError {
  override name = 'TransactionAbortedError';
  constructor(cause: unknown) {
    super(
      'transaction_aborted',
      'a statement failed inside the handler transaction and the handler went on, so the transaction was aborted ' +
        'and cannot commit; let the error propagate, or wrap the statement that may fail in a savepoint ' +
        '(await trx.transaction(async (sp) => ...))',
      { retriable: true, cause },
    );
  }
}

/**
 * A handler called `commit()` or `rollback()` on the record's transaction. The consumer
 * owns it (it also holds the inbox row, and in batch mode the other records' work), so
 * the record is dead-lettered at once: retrying would end it the same way.
 */
export class TransactionOwnedByConsumerError extends EventualError {
  override name = 'TransactionOwnedByConsumerError';
  constructor() {
    super(
      'transaction_owned_by_consumer',
      'the record transaction belongs to the consumer: do not commit or roll it back in a handler; ' +
        'throw to roll back, or use trx.transaction() for a savepoint',
      { retriable: false },
    );
  }
}

/**
 * The inbox's own SQLSTATEs as typed errors (the statement runner in core turns
 * everything else into a `DatabaseError` or, for an outage, `DatabaseUnavailableError`).
 * EV002 is raised by the inbox transition trigger (see migrations.ts).
 */
export const translateInboxError = schemaTranslator(
  'inbox',
  'run consumer.migrate() or add inboxMigrations() to your knex migrations',
  { EV002: (message, cause) => new IllegalInboxTransitionError(message, cause) },
);
