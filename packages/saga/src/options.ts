import {
  type BackoffPolicy,
  backoff,
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
  topicName,
} from '@eventual/core';
import { type Outbox, outboxDatabase } from '@eventual/outbox';
import type { Knex } from 'knex';
import type { AnySagaDefinition, SagaData, SagaDefinition } from './definition.js';

/** Options of `createSagaOrchestrator`, resolved at creation; an unknown key throws `InvalidOptionError`. */
export interface OrchestratorOptions {
  /** The orchestrator's own database (where saga instances live). */
  knex: Knex;
  /** The orchestrator service's outbox: commands go out through it. */
  outbox: Outbox;
  /** Topic participants reply to; consume it with the orchestrator's `replyHandler`. */
  replyTopic: string;
  /** The definitions it runs (`defineSaga(...).build()`): at least one, no two of the same name. */
  sagas: ReadonlyArray<AnySagaDefinition>;
  /** Schema of the saga table. Default `eventual`. */
  schema?: string;
  /** The table of saga instances. Default `sagas`. */
  table?: string;
  /** Attempts at a compensation before the saga goes `failed`. Default 10. */
  maxCompensationAttempts?: number;
  /** Delay between retries of a failed step or compensation. Default 1 s doubling to 60 s, 20% jitter. */
  retryBackoff?: { initialMs?: number; maxMs?: number; factor?: number; jitter?: number };
  /** Due sagas handled per sweep. Default 100. */
  sweepBatchSize?: number;
  /**
   * When `orchestrator.jobs` runs the deadline/retry sweep: a node-cron expression
   * (seconds allowed), or `false` to not schedule it (call `sweep()` yourself). Default
   * every second.
   */
  sweepSchedule?: string | false;
  /** Names this instance in events. Default `<hostname>-<pid>-<random>`. */
  instanceId?: string;
  /** Where the orchestrator reports what goes wrong (a listener that throws). Default: warnings and errors to stderr. */
  logger?: Logger;
}

export interface ResolvedOrchestratorOptions {
  knex: Knex;
  outbox: Outbox;
  replyTopic: string;
  schema: string;
  table: string;
  /** `"schema"."table"`, ready for SQL. */
  sagasTable: string;
  definitions: ReadonlyMap<string, SagaDefinition<SagaData>>;
  maxCompensationAttempts: number;
  retryBackoff: BackoffPolicy;
  sweepBatchSize: number;
  sweepSchedule: string | false;
  instanceId: string;
  logger: Logger;
}

const KNOWN = [
  'knex',
  'outbox',
  'replyTopic',
  'sagas',
  'schema',
  'table',
  'maxCompensationAttempts',
  'retryBackoff',
  'sweepBatchSize',
  'sweepSchedule',
  'instanceId',
  'logger',
] as const;

/** Between retries of a failed step or compensation: 1 s doubling to 60 s, 20% jitter. */
const RETRY_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 60_000, factor: 2, jitter: 0.2 };

/** Defaults and validation of the orchestrator's options, in one place. */
export function resolveOrchestratorOptions(options: OrchestratorOptions): ResolvedOrchestratorOptions {
  optionsObject('createSagaOrchestrator', options, KNOWN, '{ knex, outbox, replyTopic, sagas }');
  if (!isKnex(options.knex))
    throw new InvalidOptionError('knex must be a knex instance created with knex({ client: "pg", ... })');
  try {
    outboxDatabase(options.outbox);
  } catch {
    throw new InvalidOptionError(
      "outbox must be the orchestrator service's outbox from createOutbox({ knex }); commands go out through it",
    );
  }
  const schema = identifier('schema', options.schema ?? 'eventual');
  const table = identifier('table', options.table ?? 'sagas');
  const definitions = new Map<string, SagaDefinition<SagaData>>();
  for (const saga of options.sagas ?? []) {
    if (definitions.has(saga.name)) throw new InvalidOptionError(`saga '${saga.name}' is registered twice`);
    definitions.set(saga.name, saga as unknown as SagaDefinition<SagaData>);
  }
  if (definitions.size === 0)
    throw new InvalidOptionError('createSagaOrchestrator needs sagas: [defineSaga(...).build(), ...]');
  return {
    knex: options.knex,
    outbox: options.outbox,
    replyTopic: topicName('replyTopic', options.replyTopic),
    schema,
    table,
    sagasTable: qualified(schema, table),
    definitions,
    maxCompensationAttempts: integer('maxCompensationAttempts', options.maxCompensationAttempts ?? 10, 1, 1_000),
    retryBackoff: backoff('retryBackoff', options.retryBackoff, RETRY_BACKOFF),
    sweepBatchSize: integer('sweepBatchSize', options.sweepBatchSize ?? 100, 1, 10_000),
    sweepSchedule: sweepSchedule(options.sweepSchedule ?? '* * * * * *'),
    instanceId: nonEmptyString('instanceId', options.instanceId ?? defaultInstanceId(), 200),
    logger: loggerOption('logger', options.logger),
  };
}

/** The expression's syntax is checked by the scheduler that runs the job (node-cron). */
function sweepSchedule(value: unknown): string | false {
  if (value === false || (typeof value === 'string' && value.trim().length > 0)) return value;
  throw new InvalidOptionError(
    `sweepSchedule must be a node-cron expression (e.g. '*/5 * * * * *') or false, got ${JSON.stringify(value)}`,
  );
}
