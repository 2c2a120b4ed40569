import { testServices } from '@eventual/devstack/testing';
import pg from 'pg';
import { describe, expect, it } from 'vitest';

describe('PostgreSQL from the devstack', () => {
  it('creates an isolated database and runs a query in it', async () => {
    const services = testServices();
    const url = await services.createDatabase('smoke');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ db: string; answer: number; version: string }>(
        'select current_database() as db, 6 * 7 as answer, version()',
      );
      expect(rows[0]?.db).toBe(new URL(url).pathname.slice(1));
      expect(rows[0]?.answer).toBe(42);
      expect(rows[0]?.version).toMatch(/^PostgreSQL \d+/);
    } finally {
      await client.end();
    }
  });

  it('gives every call its own database', async () => {
    const services = testServices();
    const [a, b] = await Promise.all([services.createDatabase('smoke'), services.createDatabase('smoke')]);
    expect(a).not.toBe(b);
  });
});
