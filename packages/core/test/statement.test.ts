import { testServices } from '@eventual/devstack/testing';
import knexFactory from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { DatabaseError, DatabaseUnavailableError } from '../src/errors.js';
import { statementRunner } from '../src/sql/statement.js';

const services = testServices();
const url = await services.createDatabase('statement');
const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 3 } });
afterAll(() => knex.destroy());
const run = statementRunner();

describe('statement runner', () => {
  it('returns the rows of a statement', async () => {
    const rows = await run<{ n: number }>(knex, { name: 'test.add', sql: 'select ?::int + 1 as n', bindings: [41] });
    expect(rows).toEqual([{ n: 42 }]);
  });

  it("names the statement and keeps the database's words, with the SQL and its bound values out of the message", async () => {
    const statement = {
      name: 'test.selectMissing',
      sql: `select id
            from missing_table
            where payload = ?`,
      bindings: ['secret payload - with a dash'],
    };
    const error = await run(knex, statement).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error).not.toBeInstanceOf(DatabaseUnavailableError);
    const e = error as DatabaseError;
    expect(e.message).toBe('test.selectMissing: relation "missing_table" does not exist');
    expect(e.statement).toBe('test.selectMissing');
    expect(e.sql).toBe(statement.sql);
    expect(e.sqlState).toBe('42P01');
    expect(e.code).toBe('database_error');
    expect((e.cause as Error).message).toContain('missing_table');
  });

  it('lets a package translate its own SQLSTATEs into typed errors', async () => {
    class Missing extends Error {}
    const translating = statementRunner(({ statement, detail, error }) =>
      (error as { code?: string }).code === '42P01' ? new Missing(`${statement.name}: ${detail}`) : undefined,
    );
    const error = await translating(knex, { name: 'test.missing', sql: 'select * from nope', bindings: [] }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Missing);
    expect((error as Error).message).toBe('test.missing: relation "nope" does not exist');
  });

  it('turns a backend terminated mid-statement into DatabaseUnavailableError', async () => {
    const trx = await knex.transaction();
    const [{ pid }] = (await trx.raw('select pg_backend_pid() as pid')).rows;
    const sleeping = run(trx, { name: 'test.sleep', sql: 'select pg_sleep(30)', bindings: [] }).catch(
      (e: unknown) => e,
    );
    await knex.raw('select pg_terminate_backend(?)', [pid]);
    const error = await sleeping;
    await trx.rollback().catch(() => {});
    expect(error).toBeInstanceOf(DatabaseUnavailableError);
    expect((error as DatabaseUnavailableError).message).toMatch(/^test\.sleep: terminating connection/);
    expect((error as DatabaseUnavailableError).retriable).toBe(true);
  });
});
