import {
  type BackoffOptions,
  type BackoffPolicy,
  backoff,
  InvalidOptionError,
  identifier,
  integer,
  isKnex,
  knownKeys,
  type Logger,
  loggerOption,
  oneOf,
  optionsObject,
  qualified,
} from '@eventual/core';
import type { Knex } from 'knex';

/** Options of `createOutbox`; an unknown key or a wrong value throws `InvalidOptionError`. */
export interface OutboxOptions {
  /** The knex instance of the producing service's database (PostgreSQL, `pg` client). */
  knex: Knex;
  /** Schema holding the outbox tables. Default `eventual`. */
  schema?: string;
  /** Name of the messages table; its helper tables get this as prefix. Default `outbox`. */
  table?: string;
  /** Largest accepted message (payload + key + headers, UTF-8 bytes). Default 1,000,000. */
  maxMessageBytes?: number;
  /** How prepared messages whose producer went silent are resolved. */
  checkBack?: CheckBackOptions;
  /** Where the outbox and its relays and jobs report what goes wrong. Default: warnings and errors to stderr. */
  logger?: Logger;
}

/**
 * The check-back of prepared messages whose producer neither committed nor rolled back:
 * the scheduler's `checkback` job asks the registered checker.
 */
export interface CheckBackOptions {
  /** First check this long after `prepare()`. Default 30,000 ms. */
  checkAfterMs?: number;
  /** Checks before giving up and applying `defaultResolution`. Default 15. */
  maxChecks?: number;
  /** Delay between checks answered `unknown`. Default 1 s doubling to 5 min, 20% jitter. */
  backoff?: BackoffOptions;
  /** Applied when `maxChecks` checks all answered `unknown`. Default `rollback`. */
  defaultResolution?: 'commit' | 'rollback';
  /** Prepared messages checked per run. Default 100. */
  batchSize?: number;
}

export interface ResolvedCheckBack {
  checkAfterMs: number;
  maxChecks: number;
  backoff: BackoffPolicy;
  defaultResolution: 'commit' | 'rollback';
  batchSize: number;
}

export interface ResolvedOutboxOptions {
  knex: Knex;
  schema: string;
  table: string;
  maxMessageBytes: number;
  checkBack: ResolvedCheckBack;
  logger: Logger;
  /** Quoted, schema-qualified names used in SQL. */
  tables: { messages: string; leases: string; settings: string };
  /** LISTEN/NOTIFY channel that wakes relays. */
  channel: string;
}

export function resolveOutboxOptions(options: OutboxOptions): ResolvedOutboxOptions {
  optionsObject(
    'createOutbox',
    options,
    ['knex', 'schema', 'table', 'maxMessageBytes', 'checkBack', 'logger'],
    'with at least { knex }',
  );
  if (!isKnex(options.knex))
    throw new InvalidOptionError('knex must be a knex instance created with knex({ client: "pg", ... })');
  const schema = identifier('schema', options.schema ?? 'eventual');
  const table = identifier('table', options.table ?? 'outbox');
  const maxMessageBytes = integer('maxMessageBytes', options.maxMessageBytes ?? 1_000_000, 1_024, 100 * 1024 * 1024);
  const q = (name: string) => qualified(schema, name);
  return {
    knex: options.knex,
    schema,
    table,
    maxMessageBytes,
    checkBack: resolveCheckBack(options.checkBack ?? {}),
    logger: loggerOption('logger', options.logger),
    tables: { messages: q(table), leases: q(`${table}_leases`), settings: q(`${table}_settings`) },
    channel: `${schema}_${table}`,
  };
}

/** Between checks answered `unknown`: 1 s doubling to 5 min, 20% jitter. */
const CHECK_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 300_000, factor: 2, jitter: 0.2 };

function resolveCheckBack(given: CheckBackOptions): ResolvedCheckBack {
  knownKeys('checkBack', given, ['checkAfterMs', 'maxChecks', 'backoff', 'defaultResolution', 'batchSize']);
  return {
    checkAfterMs: integer('checkBack.checkAfterMs', given.checkAfterMs ?? 30_000, 0, 86_400_000),
    maxChecks: integer('checkBack.maxChecks', given.maxChecks ?? 15, 1, 1_000),
    backoff: backoff('checkBack.backoff', given.backoff, CHECK_BACKOFF),
    defaultResolution: oneOf('checkBack.defaultResolution', given.defaultResolution ?? 'rollback', [
      'commit',
      'rollback',
    ]),
    batchSize: integer('checkBack.batchSize', given.batchSize ?? 100, 1, 10_000),
  };
}
