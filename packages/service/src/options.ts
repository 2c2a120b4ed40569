import type { ConsumerOptions, Handler, HandlerOptions } from '@eventual/consumer';
import {
  InvalidOptionError,
  identifier,
  isKnex,
  knownKeys,
  type Logger,
  nonEmptyString,
  object,
  type PeriodicJob,
  stderrLogger,
  topicName,
} from '@eventual/core';
import type { OutboxJobOptions, OutboxOptions, OutboxSchemaOptions, RelayOptions } from '@eventual/outbox';
import type { Kafka } from 'kafkajs';
import type { Knex } from 'knex';
import { kafkaTransport, type Transport } from './transport.js';

/** A handler with its options, or just the handler. */
export type HandlerSpec<P = never> = Handler<P> | ({ handler: Handler<P> } & HandlerOptions<P>);

export interface ServiceConsumerOptions
  extends Omit<ConsumerOptions, 'outbox' | 'subscriber' | 'name' | 'instanceId' | 'logger'> {
  /** Names the consumer in the inbox and, by default, its consumer group. Default: the service name. */
  name?: string;
  /** The consumer group. Default: `name`. */
  groupId?: string;
  /**
   * Handlers by message type, declared up front: a consumer never starts without the
   * handlers for what it reads (a record of a type nobody handles would be dead-lettered).
   */
  handlers: Record<string, HandlerSpec>;
}

export interface ServiceOptions {
  /** The service's name: its consumers' default name and group, and its instances' default prefix. */
  name: string;
  /** The service's own database (PostgreSQL through knex): outbox, inbox and saga tables live in it. */
  knex: Knex;
  /** A kafkajs client (shorthand for `transport: kafkaTransport(kafka)`). */
  kafka?: Kafka;
  /** Where messages go and come from; give `kafka` or this. */
  transport?: Transport;
  /**
   * Names this instance in leases and events. Give one that is stable across restarts of
   * the same slot (a pod name): a restarted instance then takes its relay shards back at
   * once. Default `<hostname>-<pid>-<random>`.
   */
  instanceId?: string;
  /** Where every part reports what goes wrong. Default: warnings and errors to stderr. */
  logger?: Logger;
  /** Outbox options (schema, table, maxMessageBytes, checkBack, ...) and its shard count at creation. */
  outbox?: Omit<OutboxOptions, 'knex' | 'logger'> & Pick<OutboxSchemaOptions, 'shards'>;
  /** Relay options (batchSize, lanes, pollIntervalMs, leaseTtlMs, maxAttempts, backoff, ...). */
  relay?: Omit<RelayOptions, 'publisher' | 'instanceId'>;
  /** The outbox jobs' schedules and cleanup settings, the run lease, and jobs of your own. */
  scheduler?: OutboxJobOptions & { runLeaseMs?: number; jobs?: readonly PeriodicJob[] };
  /** The service's consumers, each with its topics and handlers. */
  consumers?: ServiceConsumerOptions[];
  /** Create or upgrade every table the service uses at start. Default true. */
  migrate?: boolean;
}

export interface ResolvedServiceOptions {
  name: string;
  knex: Knex;
  transport: Transport;
  instanceId: string | undefined;
  logger: Logger;
  outbox: Omit<OutboxOptions, 'knex' | 'logger'>;
  shards: number | undefined;
  relay: Omit<RelayOptions, 'publisher' | 'instanceId'>;
  scheduler: OutboxJobOptions & { runLeaseMs?: number; jobs?: readonly PeriodicJob[] };
  consumers: Array<ServiceConsumerOptions & { name: string; groupId: string }>;
  migrate: boolean;
}

const KEYS = [
  'name',
  'knex',
  'kafka',
  'transport',
  'instanceId',
  'logger',
  'outbox',
  'relay',
  'scheduler',
  'consumers',
  'migrate',
] as const;

/** Checks the wiring of a service as a whole, so a mistake is an error now, not a silent stall later. */
export function resolveServiceOptions(options: ServiceOptions): ResolvedServiceOptions {
  object('createService options', options);
  knownKeys('createService', options, KEYS);
  const name = nonEmptyString('name', options.name, 100);
  if (!isKnex(options.knex))
    throw new InvalidOptionError('knex must be a knex instance created with knex({ client: "pg", ... })');
  if ((options.kafka === undefined) === (options.transport === undefined))
    throw new InvalidOptionError(
      'createService needs exactly one of kafka (a kafkajs client) or transport (e.g. kafkaTransport(kafka))',
    );
  const transport = options.transport ?? kafkaTransport(options.kafka as Kafka);
  if (typeof transport.publisher !== 'function' || typeof transport.subscriber !== 'function')
    throw new InvalidOptionError('transport must have publisher() and subscriber({ groupId })');
  const { shards, ...outbox } = options.outbox ?? {};
  const consumers = (options.consumers ?? []).map((c, i) => resolveConsumer(name, c, i));
  const names = new Set<string>();
  for (const c of consumers) {
    if (names.has(c.name))
      throw new InvalidOptionError(`two consumers are named '${c.name}'; give each consumers[i].name its own`);
    names.add(c.name);
  }
  if (options.migrate !== undefined && typeof options.migrate !== 'boolean')
    throw new InvalidOptionError('migrate must be true or false');
  return {
    name,
    knex: options.knex,
    transport,
    instanceId: options.instanceId === undefined ? undefined : nonEmptyString('instanceId', options.instanceId),
    logger: options.logger ?? stderrLogger,
    outbox,
    shards,
    relay: options.relay ?? {},
    scheduler: options.scheduler ?? {},
    consumers,
    migrate: options.migrate ?? true,
  };
}

function resolveConsumer(service: string, given: ServiceConsumerOptions, i: number) {
  const where = `consumers[${i}]`;
  object(where, given);
  const name = nonEmptyString(`${where}.name`, given.name ?? service);
  const groupId = nonEmptyString(`${where}.groupId`, given.groupId ?? name, 249);
  if (!Array.isArray(given.topics) || given.topics.length === 0)
    throw new InvalidOptionError(`${where}.topics must list the topics consumer '${name}' reads`);
  for (const [t, topic] of given.topics.entries()) topicName(`${where}.topics[${t}]`, topic);
  const handlers = given.handlers === undefined ? {} : object(`${where}.handlers`, given.handlers);
  if (Object.keys(handlers).length === 0)
    throw new InvalidOptionError(
      `consumer '${name}' has no handlers: declare { handlers: { MessageType: async ({ trx, message }) => ... } } ` +
        'for the types it reads; started without them, every record would be dead-lettered',
    );
  for (const [type, spec] of Object.entries(handlers)) {
    const fn = typeof spec === 'function' ? spec : (spec as { handler?: unknown } | null)?.handler;
    if (typeof fn !== 'function')
      throw new InvalidOptionError(`${where}.handlers.${type} must be a handler function or { handler, parse? }`);
  }
  if (given.schema !== undefined) identifier(`${where}.schema`, given.schema);
  return { ...given, name, groupId };
}
