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
 * so (a URL or an object with a host and a database); undefined otherwise (a function,
 * a host left to PGHOST, ...). Hosts are compared without case, the loopback names as
 * one, and an absent port is 5432, so one database written two ways is one database.
 */
export function databaseOf(knex: Knex | Knex.Transaction): string | undefined {
  const settings = (knex.client as { connectionSettings?: unknown }).connectionSettings;
  if (typeof settings === 'string') return fromUrl(settings);
  if (settings === null || typeof settings !== 'object') return undefined;
  const s = settings as { connectionString?: unknown; host?: unknown; port?: unknown; database?: unknown };
  if (typeof s.connectionString === 'string') return fromUrl(s.connectionString);
  return normalised(s.host, s.port, s.database);
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

function normalised(host: unknown, port: unknown, database: unknown): string | undefined {
  if (typeof host !== 'string' || host === '' || typeof database !== 'string' || database === '') return undefined;
  const name = host.toLowerCase();
  const number = port === undefined || port === null || port === '' ? 5432 : Number(port);
  return `${LOOPBACK.has(name) ? 'loopback' : name}:${number}/${database}`;
}

function fromUrl(url: string): string | undefined {
  try {
    const u = new URL(url);
    return normalised(u.hostname, u.port, decodeURIComponent(u.pathname.replace(/^\//, '')));
  } catch {
    return undefined;
  }
}

/**
 * Whether a transaction runs on the database `knex` connects to: the same knex (a
 * transaction shares its client's configuration), or one configured for the same
 * host, port and database. What cannot be read (a connection function) passes.
 */
export function sameDatabase(trx: Knex.Transaction, knex: Knex): boolean {
  if ((trx.client as { config?: unknown }).config === (knex.client as { config?: unknown }).config) return true;
  const theirs = databaseOf(trx);
  const ours = databaseOf(knex);
  return theirs === undefined || ours === undefined || theirs === ours;
}
