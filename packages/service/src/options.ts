import type { ConsumerOptions, Handler, HandlerOptions } from '@eventual/consumer';
import {
  bool,
  connectTimeout,
  InvalidOptionError,
  identifier,
  isKnex,
  knownKeys,
  type Logger,
  nonEmptyString,
  object,
  type PeriodicJob,
  type ResolvedTopicSpec,
  stderrLogger,
  type TopicSpec,
  topicName,
  topicSpecs,
} from '@eventual/core';
import {
  DEFAULT_GAUGE_INTERVAL_MS,
  gaugeInterval,
  type JsonValue,
  type OutboxJobOptions,
  type OutboxOptions,
  type OutboxSchemaOptions,
  type RelayOptions,
} from '@eventual/outbox';
import type {
  AnySagaDefinition,
  CommandHandler,
  CommandHandlerOptions,
  OrchestratorOptions,
  ParticipantOptions,
} from '@eventual/saga';
import type { Kafka } from 'kafkajs';
import type { Knex } from 'knex';
import { kafkaTransport, type Transport } from './transport.js';

/**
 * A message handler: a plain function gets the payload as parsed JSON; with `parsed()`
 * the payload is validated and typed by a parse function first (a throw dead-letters
 * the record as malformed, before anything is written).
 */
export type HandlerSpec = Handler | ParsedSpec<Handler<never>>;
/** A saga command handler, plain or with a parse function (`parsedCommand()`). */
export type CommandSpec = CommandHandler | ParsedSpec<CommandHandler<never>>;

/**
 * A handler together with the function that validates and types its payload first;
 * `parsed()` and `parsedCommand()` build one.
 */
export interface ParsedSpec<H> {
  /** Runs with the payload `parse` returned. */
  readonly handler: H;
  /**
   * Validates and converts the JSON payload; a throw dead-letters a message as
   * malformed, and refuses a saga command (as `CommandRejected` does).
   */
  readonly parse: (payload: JsonValue) => unknown;
}

/** A handler whose payload `parse` validates and types: `parsed(parseOrder, async ({ message }) => ...)`. */
export function parsed<P>(
  parse: NonNullable<HandlerOptions<P>['parse']>,
  handler: Handler<P>,
): ParsedSpec<Handler<never>> {
  return { handler: handler as Handler<never>, parse };
}

/** A saga command handler whose payload `parse` validates and types. */
export function parsedCommand<P>(
  parse: NonNullable<CommandHandlerOptions<P>['parse']>,
  handler: CommandHandler<P>,
): ParsedSpec<CommandHandler<never>> {
  return { handler: handler as CommandHandler<never>, parse };
}

/** The consumer settings a service's own consumers (the saga reply consumer) accept. */
export type ConsumerSettings = Omit<ServiceConsumerOptions, 'topics' | 'handlers' | 'commands'>;

/**
 * One consumer of a service: `ConsumerOptions` less what the service supplies (outbox,
 * subscriber, instanceId, logger), with its consumer group and its handlers or saga commands.
 */
export interface ServiceConsumerOptions
  extends Omit<ConsumerOptions, 'outbox' | 'subscriber' | 'name' | 'instanceId' | 'logger'> {
  /** Names the consumer in the inbox and, by default, its consumer group. Default: the service name. */
  name?: string;
  /** The consumer group. Default: `name`. */
  groupId?: string;
  /**
   * Handlers by message type, declared up front: a consumer never starts without the
   * handlers for what it reads (a record of a type nobody handles is held for
   * `unknownTypeGraceMs`, then dead-lettered).
   */
  handlers?: Record<string, HandlerSpec>;
  /**
   * Saga commands by message type, for a participant: each handler's reply goes back
   * to the orchestrator through the outbox, exactly once per saga step (see
   * `@eventual/saga`'s `createParticipant`). The service runs one participant, named
   * after it (`participant.name` to change that), and migrates its log.
   */
  commands?: Record<string, CommandSpec>;
}

/**
 * The sagas a service orchestrates: `OrchestratorOptions` less what the service
 * supplies (knex, outbox, logger, instanceId), with the definitions, the reply topic
 * and the settings of the consumer that reads it.
 */
export interface ServiceSagaOptions
  extends Omit<OrchestratorOptions, 'knex' | 'outbox' | 'replyTopic' | 'sagas' | 'logger' | 'instanceId'> {
  /** The saga definitions this service orchestrates (`defineSaga(...).build()`). */
  definitions: ReadonlyArray<AnySagaDefinition>;
  /**
   * Where participants reply. The service consumes it itself with the orchestrator's
   * reply handler, and schedules the deadline sweep: a saga can never be left without
   * either.
   */
  replyTopic: string;
  /** Settings of the reply consumer. Default name and group: `<service>-saga-replies`. */
  consumer?: ConsumerSettings;
}

/** Options of `createService`; an unknown key or a wiring mistake throws `InvalidOptionError` at creation. */
export interface ServiceOptions {
  /** The service's name, 1-100 characters: the default name of its consumers (and so their group) and participant. */
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
   * once. Default: each part (relay, scheduler, every consumer, the orchestrator)
   * generates its own `<hostname>-<pid>-<random>`.
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
  /** The service's consumers, each with its topics and handlers (or saga commands). */
  consumers?: ServiceConsumerOptions[];
  /** Sagas this service orchestrates; the reply consumer and the sweep come with them. */
  sagas?: ServiceSagaOptions;
  /** The participant that runs the consumers' `commands`. Default name: the service's. */
  participant?: ParticipantOptions;
  /** Create or upgrade every table the service uses at start. Default true. */
  migrate?: boolean;
  /**
   * The topics this service owns, ensured at start before the relay and consumers run:
   * missing ones are created as declared, existing ones verified (fewer partitions,
   * replicas or min.insync.replicas than declared fails the start with a
   * `TopicMismatchError`). Topics it reads but does not declare must exist already.
   */
  topics?: TopicSpec[];
  /**
   * How long start() waits for the broker, at each step that needs it (topics, relay,
   * each consumer), before it fails with a `BrokerUnreachableError` naming the brokers
   * and the reason. Default 15,000 ms; `relay.connectTimeoutMs` and
   * `consumers[i].connectTimeoutMs` override it for their part.
   */
  connectTimeoutMs?: number;
  /**
   * The OpenTelemetry gauges the service registers at start (outbox backlog, oldest
   * pending, prepared, dead, consumer lag, sagas by status) and removes at stop, when a
   * meter provider is registered: `gaugeIntervalMs` is how often at most the database
   * is read for them (default 10,000 ms; set it to your scrape interval), `gauges:
   * false` registers none.
   */
  metrics?: { gauges?: boolean; gaugeIntervalMs?: number };
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
  consumers: ResolvedConsumer[];
  sagas: ServiceSagaOptions | undefined;
  participant: ParticipantOptions;
  migrate: boolean;
  topics: ResolvedTopicSpec[];
  connectTimeoutMs: number;
  metrics: { gauges: boolean; gaugeIntervalMs: number };
}

export type ResolvedConsumer = Omit<ServiceConsumerOptions, 'handlers' | 'commands'> & {
  /** `saga-replies`: the orchestrator's reply consumer, whose handler the service registers. */
  role: 'handlers' | 'saga-replies';
  name: string;
  groupId: string;
  handlers: Record<string, HandlerSpec>;
  commands: Record<string, CommandSpec>;
};

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
  'sagas',
  'participant',
  'migrate',
  'topics',
  'connectTimeoutMs',
  'metrics',
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
  const consumers = (options.consumers ?? []).map((c, i) => resolveConsumer(name, c, `consumers[${i}]`));
  const sagas = options.sagas === undefined ? undefined : resolveSagas(options.sagas, consumers);
  if (sagas)
    consumers.push(
      resolveConsumer(
        name,
        {
          name: `${name}-saga-replies`,
          ...sagas.consumer,
          topics: [sagas.replyTopic],
        },
        'sagas.consumer',
        'saga-replies',
      ),
    );
  const names = new Set<string>();
  for (const c of consumers) {
    if (names.has(c.name))
      throw new InvalidOptionError(`two consumers are named '${c.name}'; give each consumers[i].name its own`);
    names.add(c.name);
  }
  if (options.migrate !== undefined && typeof options.migrate !== 'boolean')
    throw new InvalidOptionError('migrate must be true or false');
  const topics = options.topics === undefined ? [] : topicSpecs('topics', options.topics);
  if (topics.length > 0 && typeof transport.ensureTopics !== 'function')
    throw new InvalidOptionError(
      'topics needs a transport with ensureTopics(topics), as kafkaTransport(kafka) and the memory broker have',
    );
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
    sagas,
    participant: { name, ...(options.participant === undefined ? {} : object('participant', options.participant)) },
    migrate: options.migrate ?? true,
    topics,
    connectTimeoutMs: connectTimeout('connectTimeoutMs', options.connectTimeoutMs),
    metrics: resolveMetrics(options.metrics),
  };
}

function resolveMetrics(given: ServiceOptions['metrics']): ResolvedServiceOptions['metrics'] {
  if (given === undefined) return { gauges: true, gaugeIntervalMs: DEFAULT_GAUGE_INTERVAL_MS };
  object('metrics', given);
  knownKeys('metrics', given, ['gauges', 'gaugeIntervalMs']);
  return {
    gauges: given.gauges === undefined ? true : bool('metrics.gauges', given.gauges),
    gaugeIntervalMs: gaugeInterval('metrics.gaugeIntervalMs', given.gaugeIntervalMs),
  };
}

function resolveSagas(given: ServiceSagaOptions, consumers: ResolvedConsumer[]): ServiceSagaOptions {
  object('sagas', given);
  if (!Array.isArray(given.definitions) || given.definitions.length === 0)
    throw new InvalidOptionError('sagas.definitions must list the sagas this service runs: [defineSaga(...).build()]');
  const replyTopic = topicName('sagas.replyTopic', given.replyTopic);
  const reader = consumers.find((c) => c.topics.includes(replyTopic));
  if (reader)
    throw new InvalidOptionError(
      `consumer '${reader.name}' reads ${replyTopic}, the saga reply topic: the service consumes it itself; ` +
        'remove it from that consumer (use sagas.consumer for its settings)',
    );
  return given;
}

function resolveConsumer(
  service: string,
  given: ServiceConsumerOptions,
  where: string,
  role: ResolvedConsumer['role'] = 'handlers',
): ResolvedConsumer {
  object(where, given);
  const name = nonEmptyString(`${where}.name`, given.name ?? service);
  const groupId = nonEmptyString(`${where}.groupId`, given.groupId ?? name, 249);
  if (!Array.isArray(given.topics) || given.topics.length === 0)
    throw new InvalidOptionError(`${where}.topics must list the topics consumer '${name}' reads`);
  for (const [t, topic] of given.topics.entries()) topicName(`${where}.topics[${t}]`, topic);
  const handlers = (given.handlers === undefined ? {} : object(`${where}.handlers`, given.handlers)) as Record<
    string,
    HandlerSpec
  >;
  const commands = (given.commands === undefined ? {} : object(`${where}.commands`, given.commands)) as Record<
    string,
    CommandSpec
  >;
  if (role === 'handlers' && Object.keys(handlers).length + Object.keys(commands).length === 0)
    throw new InvalidOptionError(
      `consumer '${name}' has no handlers: declare { handlers: { MessageType: async ({ trx, message }) => ... } } ` +
        '(or saga commands) for the types it reads; started without them, every record would be dead-lettered',
    );
  for (const [what, specs] of [
    ['handlers', handlers],
    ['commands', commands],
  ] as const) {
    for (const [type, spec] of Object.entries(specs)) {
      const fn = typeof spec === 'function' ? spec : (spec as { handler?: unknown } | null)?.handler;
      if (typeof fn !== 'function')
        throw new InvalidOptionError(`${where}.${what}.${type} must be a handler function or { handler, parse? }`);
      if (what === 'commands' && type in handlers)
        throw new InvalidOptionError(`${where}: '${type}' is both a handler and a saga command; keep one`);
    }
  }
  if (given.schema !== undefined) identifier(`${where}.schema`, given.schema);
  return { ...given, role, name, groupId, handlers, commands };
}
