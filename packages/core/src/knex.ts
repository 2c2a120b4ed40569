import type { Knex } from 'knex';

/** A knex instance (what `knex({ client: 'pg', ... })` returns). */
export function isKnex(value: unknown): value is Knex {
  return (
    typeof value === 'function' &&
    typeof (value as { raw?: unknown }).raw === 'function' &&
    'client' in (value as object)
  );
}

/**
 * A knex transaction is a knex function with `isTransaction === true`. A plain knex
 * instance would make each statement its own transaction, so a message could commit
 * without the business change it announces.
 */
export function isKnexTransaction(value: unknown): value is Knex.Transaction {
  return isKnex(value) && (value as { isTransaction?: boolean }).isTransaction === true;
}
