import { EventualError, schemaTranslator } from '@eventual/core';

export { EventualError, InvalidOptionError, SchemaNotReadyError } from '@eventual/core';

declare module '@eventual/core' {
  interface EventualErrorCodes {
    invalid_message: InvalidMessageError;
    message_too_large: MessageTooLargeError;
    reserved_header: ReservedHeaderError;
    transaction_required: TransactionRequiredError;
    foreign_transaction: ForeignTransactionError;
    prepared_message_resolved: PreparedMessageResolvedError;
    unknown_message: UnknownMessageError;
    illegal_transition: IllegalTransitionError;
    publish_unavailable: PublishError;
    publish_retriable: PublishError;
    publish_permanent: PublishError;
    /** `ensureKafkaTopics` could not create a declared topic (the cause says why). */
    topic_create_failed: EventualError;
  }
}

/** A message cannot be stored: bad topic/key/type, or a payload that is not JSON. Nothing was written. */
export class InvalidMessageError extends EventualError {
  override name = 'InvalidMessageError';
  constructor(message: string, code: 'invalid_message' | 'message_too_large' | 'reserved_header' = 'invalid_message') {
    super(code, message, { retriable: false });
  }
}

/** A message is larger than `maxMessageBytes`. Nothing was written. */
export class MessageTooLargeError extends InvalidMessageError {
  override name = 'MessageTooLargeError';
  /** The message's size in UTF-8 bytes: payload JSON, key and headers JSON together. */
  readonly bytes: number;
  /** The outbox's `maxMessageBytes`. */
  readonly limit: number;
  constructor(bytes: number, limit: number, what: string) {
    super(
      `${what} is ${bytes} bytes, over the limit of ${limit} bytes (maxMessageBytes); ` +
        'store large data elsewhere and send a reference, or raise maxMessageBytes and the topic max.message.bytes together',
      'message_too_large',
    );
    this.bytes = bytes;
    this.limit = limit;
  }
}

/**
 * A header the caller passed would be replaced by one the outbox writes itself
 * (`message-id`, `message-type`, in any letter case), differs from a standard header
 * only in letter case, or contradicts the `correlationId` / `causationId` field.
 * Nothing was written.
 */
export class ReservedHeaderError extends InvalidMessageError {
  override name = 'ReservedHeaderError';
  constructor(message: string) {
    super(message, 'reserved_header');
  }
}

/** The caller passed something other than a knex transaction where one is required. */
export class TransactionRequiredError extends EventualError {
  override name = 'TransactionRequiredError';
  constructor(operation: string) {
    super(
      'transaction_required',
      `${operation} needs the knex transaction of your business change (knex.transaction(async (trx) => ...)), ` +
        'so the message commits if and only if your change commits; it never begins or commits one itself',
      { retriable: false },
    );
  }
}

/**
 * The transaction belongs to another database than the outbox's: the message would
 * be written to that database's outbox and published from there, whatever the outbox
 * it was meant for. Nothing was written.
 */
export class ForeignTransactionError extends EventualError {
  override name = 'ForeignTransactionError';
  constructor(operation: string, theirs: string, ours: string) {
    super(
      'foreign_transaction',
      `${operation} got a transaction of database ${theirs}, but this outbox lives in ${ours}: ` +
        "enqueue with a transaction of the outbox's own knex, or create the outbox on the database you write to",
      { retriable: false },
    );
  }
}

/**
 * A prepared message was already resolved the other way, e.g. `commit()` after the
 * check-back rolled it back. Nothing is published; the caller must compensate its work.
 */
export class PreparedMessageResolvedError extends EventualError {
  override name = 'PreparedMessageResolvedError';
  /** The id passed to `commit()` or `rollback()`. */
  readonly messageId: string;
  /**
   * The state the message is in instead: `cancelled` for a commit that came too late;
   * `pending`, `published` or `dead` for a rollback.
   */
  readonly state: string;
  constructor(messageId: string, attempted: 'commit' | 'rollback', state: string) {
    const hint =
      attempted === 'commit'
        ? 'it was rolled back (by you or the check-back) and will never be published: compensate the work you did'
        : 'it was already committed (by you or the check-back) and is or will be published';
    super('prepared_message_resolved', `cannot ${attempted} prepared message ${messageId}: it is ${state}; ${hint}`, {
      retriable: false,
    });
    this.messageId = messageId;
    this.state = state;
  }
}

/** No message with this id exists (or it was cleaned up). */
export class UnknownMessageError extends EventualError {
  override name = 'UnknownMessageError';
  constructor(messageId: string) {
    super('unknown_message', `no outbox message with id ${messageId}`, { retriable: false });
  }
}

/** The database refused a state change the state machine does not allow. */
export class IllegalTransitionError extends EventualError {
  override name = 'IllegalTransitionError';
  constructor(detail: string, cause?: unknown) {
    super('illegal_transition', `illegal outbox state transition: ${detail}`, { retriable: false, cause });
  }
}

/**
 * Publishing to the broker failed. `kind` says whose fault it was:
 * - `unavailable`: the broker or network (not the message's fault; does not count an attempt),
 * - `retriable`: this publication failed but may succeed later (counts an attempt),
 * - `permanent`: it can never succeed (oversized record, invalid topic): the message goes dead.
 */
export type PublishErrorKind = 'unavailable' | 'retriable' | 'permanent';

/**
 * A `Publisher` could not publish a batch. `code` is `publish_<kind>`; `retriable` is
 * false only for `permanent`. The relay wraps whatever else a publisher throws as
 * `retriable`.
 */
export class PublishError extends EventualError {
  override name = 'PublishError';
  /** Whose fault it was, and so what the relay does (see `PublishErrorKind`). */
  readonly kind: PublishErrorKind;
  constructor(kind: PublishErrorKind, message: string, cause?: unknown) {
    super(`publish_${kind}`, message, { retriable: kind !== 'permanent', cause });
    this.kind = kind;
  }
}

/**
 * The outbox's own SQLSTATEs as typed errors (the statement runner in core turns
 * everything else into a `DatabaseError` or, for an outage, `DatabaseUnavailableError`).
 * EV001 is raised by the state-machine trigger (see migrations.ts).
 */
export const translateOutboxError = schemaTranslator(
  'outbox',
  'run outbox.migrate() or add outboxMigrations() to your knex migrations',
  { EV001: (message, cause) => new IllegalTransitionError(message, cause) },
);
