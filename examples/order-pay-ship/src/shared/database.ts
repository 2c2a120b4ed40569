import knexFactory, { type Knex } from 'knex';

export function connect(url: string, poolMax = 10): Knex {
  return knexFactory({
    client: 'pg',
    connection: url,
    pool: { min: 0, max: poolMax },
    // A killed peer or a restarting database should not leave requests hanging forever.
    acquireConnectionTimeout: 30_000,
  });
}

/**
 * Creates the service's database when it does not exist yet (docker-compose gives all
 * services one PostgreSQL server; each keeps its own database on it).
 */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(name))
    throw new Error(`database name in DATABASE_URL must match /^[a-z][a-z0-9_]{0,62}$/, got ${JSON.stringify(name)}`);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const knex = connect(admin.toString(), 1);
  try {
    const found = await knex.raw('select 1 from pg_database where datname = ?', [name]);
    if (found.rows.length > 0) return;
    await knex.raw(`create database "${name}"`).catch((error: { code?: string }) => {
      if (error.code !== '42P04') throw error; // created by someone else meanwhile
    });
  } finally {
    await knex.destroy();
  }
}

/** PostgreSQL bigint and sum() come back as strings; amounts here are far below 2^53. */
export function toNumber(value: unknown): number {
  if (value === null || value === undefined) return 0;
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`expected an integer, got ${JSON.stringify(value)}`);
  return n;
}
