import knexFactory, { type Knex } from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { databaseOf } from '../src/knex.js';

const made: Knex[] = [];
const knex = (connection: Knex.Config['connection']) => {
  const k = knexFactory({ client: 'pg', connection, pool: { min: 0, max: 1 } });
  made.push(k);
  return k;
};
afterAll(async () => {
  for (const k of made) await k.destroy();
});

describe('databaseOf', () => {
  it('reads one database written different ways as the same', () => {
    const forms = [
      'postgres://u:p@DB.example:5432/orders',
      'postgres://u:p@db.example/orders',
      { host: 'db.example', database: 'orders', user: 'u' },
      { connectionString: 'postgresql://db.example:5432/orders' },
    ];
    expect(new Set(forms.map((f) => databaseOf(knex(f))))).toEqual(new Set(['db.example:5432/orders']));
    expect(databaseOf(knex('postgres://localhost/orders'))).toBe(
      databaseOf(knex({ host: '127.0.0.1', database: 'orders' })),
    );
  });

  it('tells different databases apart, and says nothing when it cannot know', () => {
    expect(databaseOf(knex('postgres://db.example/orders'))).not.toBe(
      databaseOf(knex('postgres://db.example/billing')),
    );
    expect(databaseOf(knex('postgres://db.example:6432/orders'))).not.toBe(
      databaseOf(knex('postgres://db.example/orders')),
    );
    expect(databaseOf(knex({ database: 'orders' }))).toBeUndefined(); // host from PGHOST
  });
});
