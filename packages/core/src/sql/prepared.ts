import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { isKnexTransaction } from '../knex.js';
import type { Statement } from './statement.js';

/** The pg `Client` a knex transaction holds, as far as a prepared statement needs it. */
interface PgConnection {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

interface Native {
  /** `prepared_<hash>`: one name per distinct text, so two texts never share a name on a connection. */
  name: string;
  /** The text with `$1..$n` for knex's `?` placeholders. */
  text: string;
}

const natives = new Map<string, Native>();

/**
 * `?` -> `$n`, as knex does for pg. Statements that go through here are our own and
 * contain no literal `?` (no jsonb `?` operator, no `?` in a string literal); one that
 * did would get a parameter too many, which PostgreSQL refuses loudly.
 */
function nativeOf(sql: string): Native {
  let native = natives.get(sql);
  if (!native) {
    let n = 0;
    const text = sql.replace(/\?/g, () => `$${++n}`);
    native = { name: `eventual_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`, text };
    natives.set(sql, native);
  }
  return native;
}

/**
 * Runs `statement` as a named prepared statement directly on the pg connection a knex
 * transaction holds, or returns undefined when it cannot (not a transaction, not the
 * pg driver), and the caller runs it through knex instead.
 *
 * Why: on the caller's hot path (an enqueue inside their transaction) knex's query
 * building and an unnamed statement's parse and plan on every call cost as much as the
 * round trip itself; a named statement is parsed once per connection and planned from
 * then on from its cached plan.
 *
 * Safety: the transaction's completion is checked synchronously right before the query
 * is queued on its connection. knex marks a transaction completed synchronously when
 * commit() or rollback() is called and queues COMMIT on the same connection, whose
 * queries run in order; so the statement either runs before the COMMIT, inside the
 * transaction, or is refused as knex itself refuses queries on a completed transaction.
 * Never outside it.
 */
export async function runPrepared<Row>(db: Knex | Knex.Transaction, statement: Statement): Promise<Row[] | undefined> {
  if (!isKnexTransaction(db) || !isPgClient(db.client)) return undefined;
  const conn = (await db.client.acquireConnection()) as PgConnection;
  if (typeof conn?.query !== 'function') return undefined;
  if (db.isCompleted())
    throw new Error('Transaction query already complete: the transaction was committed or rolled back');
  const { name, text } = nativeOf(statement.sql);
  const result = await conn.query({ name, text, values: statement.bindings as unknown[] });
  return result.rows as Row[];
}

/** knex's pg dialect ('pg' / 'postgres' / 'postgresql'), not pg-native or another database. */
function isPgClient(client: Knex.Client): boolean {
  const dialect = (client as { dialect?: unknown }).dialect;
  const driverName = (client as { driverName?: unknown }).driverName;
  return dialect === 'postgresql' && driverName === 'pg';
}
