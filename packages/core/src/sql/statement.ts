import type { Knex } from 'knex';
import {
  DatabaseError,
  DatabaseUnavailableError,
  errorMessage,
  isMissingSchema,
  SchemaNotReadyError,
  sqlStateOf,
} from '../errors.js';
import { isDatabaseOutage } from '../outage.js';
import { runPrepared } from './prepared.js';

/** A statement with `?` placeholders for knex.raw, built by a package's `sql/` functions. */
export interface Statement {
  /** What errors and traces call it, `<package>.<verb>`, e.g. `outbox.claimBatch`. */
  name: string;
  /** The SQL text, with one `?` per binding. */
  sql: string;
  /** The values of the placeholders, in order. */
  bindings: readonly Knex.RawBinding[];
  /**
   * Run it, inside a transaction on the pg driver, as a named prepared statement on the
   * transaction's connection (see prepared.ts): for hot statements on a caller's path,
   * such as the enqueue. It then bypasses knex (no knex 'query' events for it).
   */
  prepared?: boolean;
}

/**
 * Runs a statement on a knex instance or transaction and resolves its rows; a failure
 * rejects with the error `statementRunner` translated it into.
 */
export type StatementRunner = <Row>(db: Knex | Knex.Transaction, statement: Statement) => Promise<Row[]>;

/** What a package's translator gets: the driver error and the database's own words, without the SQL. */
export interface FailedStatement {
  /** The statement that failed. */
  statement: Statement;
  /** What the database (or the driver) said, without the statement text knex prepends. */
  detail: string;
  /** What knex or the driver threw, as it threw it (its SQLSTATE through `sqlStateOf`). */
  error: unknown;
}

/**
 * A function that runs a statement and returns its rows. Every failure leaves it as
 * an `EventualError`, translated at this one chokepoint:
 * - `translate` turns a package's own SQLSTATEs into its typed errors (a missing
 *   table into "run the migrations", a state-machine trigger into an illegal
 *   transition); it returns undefined for anything else;
 * - an outage (see outage.ts) becomes `DatabaseUnavailableError`;
 * - anything else a `DatabaseError` naming the statement.
 */
export function statementRunner(translate: (failed: FailedStatement) => Error | undefined = () => undefined) {
  const runner: StatementRunner = async <Row>(db: Knex | Knex.Transaction, statement: Statement): Promise<Row[]> => {
    try {
      if (statement.prepared) {
        const rows = await runPrepared<Row>(db, statement);
        if (rows) return rows;
      }
      const result = await db.raw(statement.sql, statement.bindings as Knex.RawBinding[]);
      return (result as { rows: Row[] }).rows;
    } catch (error) {
      throw translateFailure(db, statement, error, translate);
    }
  };
  return runner;
}

function translateFailure(
  db: Knex | Knex.Transaction,
  statement: Statement,
  error: unknown,
  translate: (failed: FailedStatement) => Error | undefined,
): Error {
  if (error instanceof DatabaseError) return error;
  const detail = withoutStatementText(db, statement, errorMessage(error));
  const typed = translate({ statement, detail, error });
  if (typed) return typed;
  if (isDatabaseOutage(error)) return new DatabaseUnavailableError(statement.name, statement.sql, detail, error);
  return new DatabaseError(statement.name, statement.sql, detail, error);
}

/**
 * knex prepends the statement it sent to the driver's message: `<sql> - <message>`.
 * That is a screenful of SQL in every event and log line. knex builds the prefix from
 * the statement as sent (`$1` placeholders for pg, with any `?` left in it filled
 * in), so the prefix is known and can be cut off precisely.
 */
function withoutStatementText(db: Knex | Knex.Transaction, statement: Statement, message: string): string {
  let prefixes: string[];
  try {
    const raw = db.raw(statement.sql, statement.bindings as Knex.RawBinding[]);
    prefixes = [`${raw.toSQL().toNative().sql} - `, `${raw.toString()} - `];
  } catch {
    return message;
  }
  const prefix = prefixes.find((p) => message.startsWith(p));
  return prefix ? message.slice(prefix.length) : message;
}

/**
 * A package's translator: missing tables become `SchemaNotReadyError` naming the
 * component and the migration that creates them; `triggers` maps the SQLSTATEs the
 * package's own triggers raise (e.g. an illegal state transition) to its typed errors.
 */
export function schemaTranslator(
  component: string,
  fix: string,
  triggers: Record<string, (message: string, cause: unknown) => Error> = {},
): (failed: FailedStatement) => Error | undefined {
  return ({ statement, detail, error }) => {
    const message = `${statement.name}: ${detail}`;
    if (isMissingSchema(error)) return new SchemaNotReadyError(component, message, fix, error);
    const trigger = triggers[sqlStateOf(error) ?? ''];
    return trigger?.(message, error);
  };
}
