import { randomBytes } from 'node:crypto';
import {
  defaultInstanceId,
  InvalidOptionError,
  identifier,
  integer,
  isKnex,
  type Logger,
  loggerOption,
  nonEmptyString,
  optionsObject,
  qualified,
} from '@eventual/core';
import type { Knex } from 'knex';

/** Options of `createPostgresLock`; an unknown key throws `InvalidOptionError`. */
export interface PostgresLockOptions {
  /** The database the lock tables live in (a knex pool; no session-level state is used). */
  knex: Knex;
  /** Schema of the lock tables. Default `eventual`. */
  schema?: string;
  /** Name of the lock table (the others are `<table>_holders`, `<table>_waiters`). Default `locks`. */
  table?: string;
  /**
   * A waiting `acquire` looks again at least this often (jittered) even without a
   * wake-up: NOTIFY is a hint, this is the truth. A place in the queue lives
   * `3 * pollIntervalMs` without a look. An integer from 10 to 60 000 ms; default 1 000.
   */
  pollIntervalMs?: number;
  /** Names this manager in events. Default `<hostname>-<pid>-<random>`. */
  instanceId?: string;
  /** Where renewal failures and lost leases are reported. Default: warnings and errors to stderr. */
  logger?: Logger;
}

/** `PostgresLockOptions` checked, with defaults, and the SQL names built once. */
export interface ResolvedPostgresLockOptions {
  knex: Knex;
  schema: string;
  table: string;
  tables: { locks: string; holders: string; waiters: string };
  functions: { acquire: string; release: string; cancel: string };
  /** This manager's NOTIFY channel: wake-ups for its waiters only. */
  channel: string;
  pollIntervalMs: number;
  instanceId: string;
  logger: Logger;
}

const KNOWN = ['knex', 'schema', 'table', 'pollIntervalMs', 'instanceId', 'logger'];

/** The one resolver of the PostgreSQL lock's options. */
export function resolvePostgresLockOptions(options: PostgresLockOptions): ResolvedPostgresLockOptions {
  optionsObject(
    'createPostgresLock',
    options,
    KNOWN,
    '{ knex, schema?, table?, pollIntervalMs?, instanceId?, logger? }',
  );
  if (!isKnex(options.knex))
    throw new InvalidOptionError('createPostgresLock needs knex: a knex instance (knex({ client: "pg", ... }))');
  const schema = identifier('schema', options.schema ?? 'eventual');
  const table = identifier('table', options.table ?? 'locks');
  const q = (name: string) => qualified(schema, name);
  return {
    knex: options.knex,
    schema,
    table,
    tables: { locks: q(table), holders: q(`${table}_holders`), waiters: q(`${table}_waiters`) },
    functions: { acquire: q(`${table}_acquire`), release: q(`${table}_release`), cancel: q(`${table}_cancel`) },
    // A channel per manager, so a release's NOTIFY reaches only the next waiter's manager.
    channel: `eventual_lock_${randomBytes(8).toString('hex')}`,
    pollIntervalMs: integer('pollIntervalMs', options.pollIntervalMs ?? 1_000, 10, 60_000),
    instanceId:
      options.instanceId === undefined ? defaultInstanceId() : nonEmptyString('instanceId', options.instanceId),
    logger: loggerOption('logger', options.logger),
  };
}
