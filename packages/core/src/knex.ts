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

/**
 * Where a knex instance connects, as `host:port/database`, when its configuration says
 * (a URL or an object); undefined for a function or anything else it cannot read.
 */
export function databaseOf(knex: Knex | Knex.Transaction): string | undefined {
  const settings = (knex.client as { connectionSettings?: unknown }).connectionSettings;
  const from = (host: unknown, port: unknown, database: unknown) =>
    typeof database === 'string' && database.length > 0
      ? `${typeof host === 'string' && host ? host : 'localhost'}:${port ?? 5432}/${database}`
      : undefined;
  if (typeof settings === 'string') return fromUrl(settings, from);
  if (settings === null || typeof settings !== 'object') return undefined;
  const s = settings as { connectionString?: unknown; host?: unknown; port?: unknown; database?: unknown };
  if (typeof s.connectionString === 'string') return fromUrl(s.connectionString, from);
  return from(s.host, s.port, s.database);
}

function fromUrl(
  url: string,
  from: (host: unknown, port: unknown, database: unknown) => string | undefined,
): string | undefined {
  try {
    const u = new URL(url);
    return from(u.hostname, u.port || undefined, decodeURIComponent(u.pathname.replace(/^\//, '')));
  } catch {
    return undefined;
  }
}

/**
 * Whether a transaction runs on the database `knex` connects to: the same knex (a
 * transaction shares its client's configuration), or one configured for the same
 * host, port and database. Unknown configurations (a connection function) pass.
 */
export function sameDatabase(trx: Knex.Transaction, knex: Knex): boolean {
  if ((trx.client as { config?: unknown }).config === (knex.client as { config?: unknown }).config) return true;
  const theirs = databaseOf(trx);
  const ours = databaseOf(knex);
  return theirs === undefined || ours === undefined || theirs === ours;
}
