import {
  type BackoffOptions,
  type BackoffPolicy,
  backoff,
  connectTimeout,
  defaultInstanceId,
  InvalidOptionError,
  identifier,
  integer,
  knownKeys,
  type Logger,
  loggerOption,
  nonEmptyString,
  object,
  oneOf,
  optionsObject,
  qualified,
  topicName,
} from '@eventual/core';
import { type Outbox, outboxDatabase } from '@eventual/outbox';
import type { Knex } from 'knex';
import cron from 'node-cron';
import type { Subscriber } from './subscriber.js';

/** Options of `createConsumer`; an unknown key or a wrong value throws `InvalidOptionError`. */
export interface ConsumerOptions {
  /**
   * The consuming service's outbox. Its knex is the database the inbox lives in, and
   * handlers' messages and dead letters are enqueued through it, all in the record's
   * one transaction; run a relay (`createRelay`) on it to get them onto Kafka.
   */
  outbox: Outbox;
  /** Names this consumer in the inbox: `(consumer, message_id)` is the duplicate key. Usually the group id. */
  name: string;
  /** Topics to consume. */
  topics: string[];
  /** The broker side, e.g. `createKafkaSubscriber({ kafka, groupId })`. The consumer closes it on stop. */
  subscriber: Subscriber;
  /** Schema of the inbox table. Default: the outbox's schema. */
  schema?: string;
  /** Name of the inbox table. Default `inbox`. */
  table?: string;
  /**
   * Batch mode: up to this many consecutive records of one partition are handled in one
   * transaction - one inbox statement claims them all, each handler runs in turn with
   * that transaction, one COMMIT, one offset commit. If any handler throws, the whole
   * batch rolls back and its records are handled again one at a time, with the usual
   * retry and dead-letter rules (so a handler may run again for a record whose batch
   * was rolled back because of another record). Default 1: a transaction per record.
   */
  batchSize?: number;
  /** Handler attempts before a record is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** Delay before the next attempt. Default 200 ms doubling to 10 s, 50% jitter. */
  backoff?: BackoffOptions;
  /**
   * A record whose type has no handler, once the grace below is over: dead-letter it
   * (default) or skip it.
   */
  onUnknownType?: 'dead-letter' | 'ignore';
  /**
   * For this long after `start()`, a record whose type has no handler is held instead
   * of settled: its partition waits (nothing written, no attempt counted, one
   * `consumer:held` event), it is checked again every second and as soon as a handler
   * is registered, and is handled normally if one appears. Covers handlers registered
   * late and rolling deploys; after it, `onUnknownType` applies at once. 0: decide at
   * once. Default 60,000 (one minute).
   */
  unknownTypeGraceMs?: number;
  /** Where a topic's dead letters go. Default `<topic>.dlq`. */
  deadLetterTopic?: (topic: string) => string;
  /** Retention cleanup of settled inbox rows, scheduled once per cluster. */
  retention?: RetentionOptions;
  /** Names this instance in events. Default `<hostname>-<pid>-<random>`. */
  instanceId?: string;
  /** Where the consumer reports what goes wrong. Default: warnings and errors to stderr. */
  logger?: Logger;
  /**
   * How long `start()` waits for the broker and checks that every topic exists
   * (`subscriber.verify`) before it fails with a `BrokerUnreachableError` or a
   * `TopicNotFoundError`. Default 15,000 ms.
   */
  connectTimeoutMs?: number;
}

/** How long the inbox remembers settled messages, and how its cleanup job runs. */
export interface RetentionOptions {
  /**
   * Settled rows older than this are deleted. It must outlast any redelivery: the
   * topic's retention if offsets may be reset to the earliest. Default 8 days
   * (Kafka's default retention is 7).
   */
  keepMs?: number;
  /**
   * node-cron expression (seconds allowed) of the cleanup job in `consumer.jobs`, or
   * `false` for none. Default every 5 minutes, at second 41. A service (`createService`) schedules it;
   * with the low-level factories, add `consumer.jobs` to your scheduler.
   */
  schedule?: string | false;
  /** Rows per DELETE: each is one short transaction. Default 1,000. */
  batchSize?: number;
  /** DELETEs per cleanup run at most, so one run's work is bounded; the next run goes on. Default 20. */
  maxBatches?: number;
}

/** `ConsumerOptions` with every default applied and every value checked (`consumer.options`). */
export interface ResolvedConsumerOptions {
  /** The consuming service's outbox. */
  outbox: Outbox;
  /** The outbox's knex: the database of the inbox and of every handler's transaction. */
  knex: Knex;
  /** Names the consumer in the inbox, events and logs. */
  name: string;
  /** The topics it reads, validated. */
  topics: string[];
  /** The broker side; the consumer closes it on stop. */
  subscriber: Subscriber;
  /** Schema of the inbox table: the option, else the outbox's schema. */
  schema: string;
  /** Name of the inbox table (default `inbox`). */
  table: string;
  /** Quoted, schema-qualified name used in SQL. */
  inboxTable: string;
  /** At most this many records of one partition per transaction (default 1: one per record). */
  batchSize: number;
  /** Handler attempts before a record is dead-lettered (default 5). */
  maxAttempts: number;
  /** Delay before each next attempt (default 200 ms doubling to 10 s, 50% jitter). */
  backoff: BackoffPolicy;
  /** A record whose type has no handler after the grace: dead-letter it (default) or skip it. */
  onUnknownType: 'dead-letter' | 'ignore';
  /** How long after `start()` such a record is held instead, in ms (default 60,000). */
  unknownTypeGraceMs: number;
  /** Where a topic's dead letters go (default `<topic>.dlq`); checked at creation for every topic. */
  deadLetterTopic: (topic: string) => string;
  /** Retention of settled inbox rows, defaults applied (8 days, every 5 minutes, 1,000 rows x 20). */
  retention: Required<RetentionOptions>;
  /** Names this instance in events (default `<hostname>-<pid>-<random>`). */
  instanceId: string;
  /** Where it reports what goes wrong (default warnings and errors to stderr). */
  logger: Logger;
  /** How long `start()` waits for the broker and the topics, in ms (default 15,000). */
  connectTimeoutMs: number;
}

export function resolveConsumerOptions(options: ConsumerOptions): ResolvedConsumerOptions {
  optionsObject(
    'createConsumer',
    options,
    [
      'outbox',
      'name',
      'topics',
      'subscriber',
      'schema',
      'table',
      'batchSize',
      'maxAttempts',
      'backoff',
      'onUnknownType',
      'unknownTypeGraceMs',
      'deadLetterTopic',
      'retention',
      'instanceId',
      'logger',
      'connectTimeoutMs',
    ],
    '{ outbox, name, topics, subscriber }',
  );
  const { outbox, subscriber } = options;
  const database = (() => {
    try {
      return outboxDatabase(outbox);
    } catch {
      throw new InvalidOptionError(
        "outbox must be the consuming service's outbox from createOutbox({ knex }); the inbox lives in its database",
      );
    }
  })();
  if (
    !subscriber ||
    typeof subscriber.subscribe !== 'function' ||
    typeof subscriber.close !== 'function' ||
    (subscriber.verify !== undefined && typeof subscriber.verify !== 'function')
  )
    throw new InvalidOptionError(
      'subscriber must implement { subscribe(topics, handlers), close() }, e.g. createKafkaSubscriber({ kafka, groupId })',
    );
  const name = nonEmptyString('name', options.name);
  if (!Array.isArray(options.topics) || options.topics.length === 0)
    throw new InvalidOptionError(
      `topics must be a non-empty array of topic names, got ${JSON.stringify(options.topics)}`,
    );
  const topics = options.topics.map((t, i) => topicName(`topics[${i}]`, t));
  if (new Set(topics).size !== topics.length) throw new InvalidOptionError('topics lists a topic more than once');
  const deadLetterTopic = options.deadLetterTopic ?? ((topic: string) => `${topic}.dlq`);
  if (typeof deadLetterTopic !== 'function')
    throw new InvalidOptionError('deadLetterTopic must be a function (topic) => dead-letter topic name');
  // Checked now, for every topic: a dead-letter topic that cannot exist would turn
  // every dead letter into an error at the worst moment.
  for (const topic of topics) {
    const dlq = topicName(`deadLetterTopic('${topic}')`, deadLetterTopic(topic));
    if (dlq === topic || topics.includes(dlq))
      throw new InvalidOptionError(
        `deadLetterTopic('${topic}') is '${dlq}', a topic this consumer reads: dead letters would loop`,
      );
  }
  const schema = identifier('schema', options.schema ?? database.schema);
  const table = identifier('table', options.table ?? 'inbox');
  return {
    outbox,
    knex: database.knex,
    name,
    topics,
    subscriber,
    schema,
    table,
    inboxTable: qualified(schema, table),
    batchSize: integer('batchSize', options.batchSize ?? 1, 1, 10_000),
    maxAttempts: integer('maxAttempts', options.maxAttempts ?? 5, 1, 1_000),
    backoff: backoff('backoff', options.backoff, { initialMs: 200, maxMs: 10_000, factor: 2, jitter: 0.5 }),
    onUnknownType: oneOf('onUnknownType', options.onUnknownType ?? 'dead-letter', ['dead-letter', 'ignore']),
    unknownTypeGraceMs: integer('unknownTypeGraceMs', options.unknownTypeGraceMs ?? 60_000, 0, 86_400_000),
    deadLetterTopic,
    retention: resolveRetention(options.retention),
    instanceId: nonEmptyString('instanceId', options.instanceId ?? defaultInstanceId()),
    logger: loggerOption('logger', options.logger),
    connectTimeoutMs: connectTimeout('connectTimeoutMs', options.connectTimeoutMs),
  };
}

function resolveRetention(value: RetentionOptions | undefined): Required<RetentionOptions> {
  const given = (value === undefined ? {} : object('retention', value)) as RetentionOptions;
  knownKeys('retention', given, ['keepMs', 'schedule', 'batchSize', 'maxBatches']);
  const schedule = given.schedule ?? '41 */5 * * * *';
  if (schedule !== false && (typeof schedule !== 'string' || !cron.validate(schedule)))
    throw new InvalidOptionError(
      `retention.schedule must be a node-cron expression (e.g. '41 */5 * * * *') or false, got ${JSON.stringify(schedule)}`,
    );
  return {
    keepMs: integer('retention.keepMs', given.keepMs ?? 8 * 86_400_000, 0),
    schedule,
    batchSize: integer('retention.batchSize', given.batchSize ?? 1_000, 1, 100_000),
    maxBatches: integer('retention.maxBatches', given.maxBatches ?? 20, 1, 10_000),
  };
}
