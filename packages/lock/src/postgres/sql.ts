import { type Statement, schemaTranslator, statementRunner } from '@eventual/core';
import { LockModeError } from '../errors.js';
import type { ResolvedAcquire } from '../options.js';
import type { ResolvedPostgresLockOptions } from './options.js';

/**
 * Runs a lock statement; the one place the lock package translates driver errors:
 * missing tables say how to migrate, EVL01 (raised by `<table>_acquire`) is a refused
 * upgrade from shared to exclusive.
 */
export const run = statementRunner(
  schemaTranslator('lock', 'run locks.migrate() or add lockMigrations() to your knex migrations', {
    EVL01: (message, cause) => new LockModeError(message, cause),
  }),
);

/** A row of `<table>_acquire`. */
export interface AttemptRow {
  granted: boolean;
  token: string | null;
  holds: number | null;
  waiter: string | null;
  retry_ms: number | null;
}

/**
 * One attempt at a lock (see `<table>_acquire` in migrations.ts): re-entry, a grant in
 * queue order, or, with `wait`, a place in the queue renewed for `waitTtlMs`.
 */
export function attempt(
  o: ResolvedPostgresLockOptions,
  a: ResolvedAcquire,
  wait: boolean,
  waitTtlMs: number,
): Statement {
  return {
    name: 'lock.acquire',
    sql: `select * from ${o.functions.acquire}(?, ?, ?, ?, ?::bigint, ?, ?, ?::bigint)`,
    bindings: [a.name, a.owner, a.requestId, a.mode, a.ttlMs, wait, o.channel, waitTtlMs],
  };
}

/**
 * Extends a lease by `ttlMs` from now on the server's clock, only while it is still
 * this grant's (owner and token) and has not expired: an expired lease is lost even
 * when nobody took it yet, since the holder has already been told so. `greatest`
 * keeps a longer expiry a re-entry of the same owner asked for.
 */
export function renew(
  o: ResolvedPostgresLockOptions,
  name: string,
  owner: string,
  token: bigint,
  ttlMs: number,
): Statement {
  return {
    name: 'lock.renew',
    sql: `
      update ${o.tables.holders}
      set expires_at = greatest(expires_at, clock_timestamp() + ?::bigint * interval '1 millisecond')
      where name = ? and owner = ? and token = ?::bigint and expires_at > clock_timestamp()
      returning token`,
    bindings: [ttlMs, name, owner, token.toString()],
  };
}

/** Gives one hold back (see `<table>_release`). */
export function release(
  o: ResolvedPostgresLockOptions,
  name: string,
  owner: string,
  token: bigint,
  requestId: string,
): Statement {
  return {
    name: 'lock.release',
    sql: `select * from ${o.functions.release}(?, ?, ?::bigint, ?)`,
    bindings: [name, owner, token.toString(), requestId],
  };
}

/** An acquire gives up: its place in the queue, and a grant it never heard of (see `<table>_cancel`). */
export function cancel(o: ResolvedPostgresLockOptions, a: ResolvedAcquire): Statement {
  return {
    name: 'lock.cancel',
    sql: `select ${o.functions.cancel}(?, ?, ?)`,
    bindings: [a.name, a.owner, a.requestId],
  };
}

/**
 * The fence, inside the caller's transaction: the lease with this token is current
 * (not expired, not replaced). `for key share` keeps it so until that transaction
 * ends: a newer holder's grant has to delete the expired row first, and waits, so the
 * caller's write commits before anyone else is granted the lock, or not at all.
 * Renewals (a non-key update) are not held up by it.
 */
export function guard(o: ResolvedPostgresLockOptions, name: string, token: bigint): Statement {
  return {
    name: 'lock.guard',
    sql: `
      select 1 as current from ${o.tables.holders}
      where name = ? and token = ?::bigint and expires_at > clock_timestamp()
      for key share`,
    bindings: [name, token.toString()],
  };
}
