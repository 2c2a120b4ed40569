import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The URL of database `dbName` on the server behind `adminUrl`. */
export function databaseUrlFor(adminUrl: string, dbName: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${encodeURIComponent(dbName)}`;
  return url.toString();
}

/**
 * Creates a fresh database named `<prefix>_<random>` and returns its URL. Each test
 * file (and each demo service) gets its own, so nothing leaks between them.
 */
export async function createDatabase(adminUrl: string, prefix = 'eventual'): Promise<string> {
  if (!/^[a-z][a-z0-9_]{0,40}$/.test(prefix)) {
    throw new TypeError(`database prefix must match /^[a-z][a-z0-9_]{0,40}$/, got ${JSON.stringify(prefix)}`);
  }
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  return databaseUrlFor(adminUrl, name);
}
