import type { Knex } from 'knex';
import { translateDatabaseError } from '../errors.js';

/** A statement with `?` placeholders for knex.raw, built by the functions in this folder. */
export interface Statement {
  sql: string;
  bindings: readonly Knex.RawBinding[];
}

/** Runs a statement and returns its rows; the one place driver errors are translated. */
export async function run<Row>(db: Knex | Knex.Transaction, statement: Statement): Promise<Row[]> {
  try {
    const result = await db.raw(statement.sql, statement.bindings as Knex.RawBinding[]);
    return (result as { rows: Row[] }).rows;
  } catch (error) {
    throw translateDatabaseError(error);
  }
}
