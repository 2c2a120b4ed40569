import type { Knex } from 'knex';
import { translateDatabaseError } from '../errors.js';

/** A statement with `?` placeholders for knex.raw, built by the functions in this folder. */
export interface Statement {
  sql: string;
  bindings: readonly Knex.RawBinding[];
}

export type StatementRunner = <Row>(db: Knex | Knex.Transaction, statement: Statement) => Promise<Row[]>;

/**
 * A function that runs a statement and returns its rows, translating driver errors
 * with `translate`: each package has exactly one place where SQLSTATEs become its
 * typed errors.
 */
export function statementRunner(translate: (error: unknown) => unknown): StatementRunner {
  return async <Row>(db: Knex | Knex.Transaction, statement: Statement): Promise<Row[]> => {
    try {
      const result = await db.raw(statement.sql, statement.bindings as Knex.RawBinding[]);
      return (result as { rows: Row[] }).rows;
    } catch (error) {
      throw translate(error);
    }
  };
}

export const run: StatementRunner = statementRunner(translateDatabaseError);
