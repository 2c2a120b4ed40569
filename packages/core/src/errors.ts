import type { BrokerUnreachableError, TopicMismatchError, TopicNotFoundError } from './broker.js';
import type { LifecycleError } from './lifecycle.js';

/**
 * The registry of error codes: code -> the error class that carries it. Each package
 * adds its own by declaration merging, so `EventualErrorCode` is the union of the codes
 * of every package a program uses and a `switch (error.code)` is checked by the compiler:
 *
 * ```ts
 * declare module '@eventual/core' {
 *   interface EventualErrorCodes { topic_not_found: TopicNotFoundError }
 * }
 * ```
 */
export interface EventualErrorCodes {
  invalid_option: InvalidOptionError;
  database_error: DatabaseError;
  database_unavailable: DatabaseUnavailableError;
  schema_not_ready: SchemaNotReadyError;
  lifecycle: LifecycleError;
  broker_unreachable: BrokerUnreachableError;
  topic_not_found: TopicNotFoundError;
  topic_mismatch: TopicMismatchError;
}

/** Every code an `EventualError` can have (see `EventualErrorCodes`). */
export type EventualErrorCode = keyof EventualErrorCodes;

/**
 * Every error eventual raises on purpose is an `EventualError` with a stable `code`
 * and a `retriable` flag: callers and the library's own loops decide what to do from
 * that data, never by parsing messages. As in kafkajs, an error is retriable unless
 * it says otherwise; errors about the caller's input say `retriable: false`.
 */
export class EventualError extends Error {
  override name = 'EventualError';
  /** What went wrong, as a stable literal: switch on it, never on the message. */
  readonly code: EventualErrorCode;
  /** Whether repeating the same step later may succeed (false for bad input). */
  readonly retriable: boolean;
  constructor(code: EventualErrorCode, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = options.retriable ?? true;
  }
}

/** An option has a wrong type or value; the message names the option and what to change. */
export class InvalidOptionError extends EventualError {
  override name = 'InvalidOptionError';
  constructor(message: string) {
    super('invalid_option', message, { retriable: false });
  }
}

/**
 * A statement failed in the database. The message is `<statement>: <what the
 * database said>`; the statement's text is kept in `sql` for debugging, out of the
 * message, so logs and events stay one readable line and carry no bound values.
 */
export class DatabaseError extends EventualError {
  override name = 'DatabaseError';
  /** The statement's name, e.g. `outbox.claimBatch`. */
  readonly statement: string;
  /** The statement's SQL text, with `?` placeholders (bindings are not kept). */
  readonly sql: string;
  /** The PostgreSQL SQLSTATE, when the server sent one. */
  readonly sqlState: string | undefined;
  constructor(
    statement: string,
    sql: string,
    detail: string,
    cause: unknown,
    options: { code?: 'database_error' | 'database_unavailable'; retriable?: boolean } = {},
  ) {
    super(options.code ?? 'database_error', `${statement}: ${detail}`, { retriable: options.retriable ?? true, cause });
    this.statement = statement;
    this.sql = sql;
    this.sqlState = sqlStateOf(cause);
  }
}

/**
 * The database could not be reached or went away while a statement ran (connection
 * refused or lost, the server shutting down or restarting, no free connection). Not
 * the fault of the message or the statement: repeat the step once it is back.
 */
export class DatabaseUnavailableError extends DatabaseError {
  override name = 'DatabaseUnavailableError';
  constructor(statement: string, sql: string, detail: string, cause: unknown) {
    super(statement, sql, detail, cause, { code: 'database_unavailable', retriable: true });
  }
}

/** The SQLSTATE of a driver error or a `DatabaseError` (five characters), if it has one. */
export function sqlStateOf(error: unknown): string | undefined {
  if (error instanceof DatabaseError) return error.sqlState;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * `value` if it is an `Error`, else a new `Error` whose message is the string, or the
 * JSON of anything else: for reporting what a `catch` or a rejected promise gave.
 */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(typeof value === 'string' ? value : JSON.stringify(value));
}

/** The `message` of an `Error`, else `String(value)`: a one-line description of whatever was thrown. */
export function errorMessage(value: unknown): string {
  return value instanceof Error ? value.message : String(value);
}

/**
 * A package's tables are missing or older than its code. The message names the
 * component and the exact call (or migration list) that creates them, so the fix is
 * never a guess: e.g. "the inbox schema is not ready (...); run consumer.migrate() or
 * add inboxMigrations() to your knex migrations".
 */
export class SchemaNotReadyError extends EventualError {
  override name = 'SchemaNotReadyError';
  /** Which tables: `outbox`, `inbox`, `saga store`, `saga participant log`. */
  readonly component: string;
  constructor(component: string, detail: string, fix: string, cause?: unknown) {
    super('schema_not_ready', `the ${component} schema is not ready (${detail}); ${fix}`, { retriable: false, cause });
    this.component = component;
  }
}

/** SQLSTATEs that mean "the table, schema or function is not there": run the migrations. */
export function isMissingSchema(error: unknown): boolean {
  const state = sqlStateOf(error);
  return state === '42P01' || state === '3F000' || state === '42883';
}
