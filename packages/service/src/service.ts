import { type Consumer, createConsumer, type Handler, observeConsumerGauges } from '@eventual/consumer';
import {
  asError,
  InvalidOptionError,
  type Lifecycle,
  type LifecycleState,
  lifecycle,
  type Scheduler,
} from '@eventual/core';
import {
  createOutbox,
  createRelay,
  createScheduler,
  type Outbox,
  observeOutboxGauges,
  observeRelayGauges,
  observeSchedulerGauges,
  type Relay,
} from '@eventual/outbox';
import {
  type CommandHandler,
  createParticipant,
  createSagaOrchestrator,
  observeSagaGauges,
  type Participant,
  SAGA_REPLY_TYPE,
  type SagaOrchestrator,
} from '@eventual/saga';
import { type HealthOptions, type ServiceHealth, watchHealth } from './health.js';
import {
  type ResolvedConsumer,
  type ResolvedServiceOptions,
  resolveServiceOptions,
  type ServiceOptions,
} from './options.js';
import { type ConnectionNeed, checkPool } from './pool.js';

/** A service's eventual parts, assembled, migrated, started and stopped in order. */
export interface Service extends Lifecycle {
  /** The `name` option: its consumers' and participant's default name. */
  readonly name: string;
  /** Enqueue and prepare messages in your transactions through it. */
  readonly outbox: Outbox;
  /** The relay from the outbox to the transport's publisher, started after the topics and before the scheduler. */
  readonly relay: Relay;
  /** The one scheduler of the service: outbox jobs, inbox cleanup, saga deadlines, yours. */
  readonly scheduler: Scheduler;
  /** The service's consumers by name (with `<name>-saga-replies` when it runs sagas). */
  readonly consumers: ReadonlyMap<string, Consumer>;
  /** The saga orchestrator: start sagas in your transactions with it. Throws if `sagas` was not configured. */
  readonly orchestrator: SagaOrchestrator;
  /** Each part and its state. */
  parts(): Array<{ part: string; state: LifecycleState }>;
  /**
   * Liveness and readiness with a reason per failed check: the service's own state, the
   * database (one `select 1` within `timeoutMs`), the broker (as the relay and the
   * consumers last reported it: no connection per call), the relay (holding shard
   * leases or waiting for them), the scheduler, and each consumer (joined its group,
   * not stopped, its subscriber alive). `healthHandler(service)` serves it over HTTP.
   */
  health(options?: HealthOptions): Promise<ServiceHealth>;
}

/**
 * The facade a service uses: from one options object it builds the outbox, the relay
 * and its publisher, the scheduler with every package's periodic jobs, and the
 * consumers with their handlers. `start()` migrates (unless `migrate: false`), checks
 * the knex pool can hold what the parts need, ensures the declared `topics`, then
 * starts relay, scheduler and
 * consumers in that order; `stop()` stops them in reverse: the records in flight
 * commit (and enqueue what they emit), the scheduler finishes its runs, the relay
 * publishes and marks its batches and closes its publisher. Wiring mistakes are
 * errors at creation or start, never a silent stall. The knex instance and the kafkajs
 * client stay yours to close.
 */
export function createService(options: ServiceOptions): Service {
  const o = resolveServiceOptions(options);
  const instanceId = o.instanceId;
  const outbox = createOutbox({ knex: o.knex, ...o.outbox, logger: o.logger });
  const relay = createRelay(outbox, {
    connectTimeoutMs: o.connectTimeoutMs,
    ...o.relay,
    publisher: o.transport.publisher(),
    ...(instanceId ? { instanceId } : {}),
  });
  const orchestrator = o.sagas && buildOrchestrator(o, outbox);
  const needsParticipant = o.consumers.some((c) => Object.keys(c.commands).length > 0);
  const participant = needsParticipant ? createParticipant(o.participant) : undefined;
  const wiring = { o, outbox, orchestrator, participant };
  const consumers = new Map(o.consumers.map((c) => [c.name, buildConsumer(wiring, c)] as const));
  const scheduler = createScheduler(outbox, {
    ...o.scheduler,
    ...(instanceId ? { instanceId } : {}),
    jobs: [
      ...(o.scheduler.jobs ?? []),
      ...[...consumers.values()].flatMap((c) => c.jobs),
      ...(orchestrator?.jobs ?? []),
    ],
  });
  const started = new Set<Lifecycle>();
  const gauges: Array<() => void> = [];

  const parts = lifecycle(`service '${o.name}'`, {
    async start(signal) {
      if (checkPool(o.knex, connectionNeeds(o, consumers)) === 'unknown')
        o.logger({
          level: 'warn',
          namespace: 'service',
          message: `service '${o.name}': the knex pool is not knex's own, so its size was not checked against what the parts need`,
        });
      if (o.migrate) await migrate(wiring, consumers);
      if (o.topics.length > 0) await ensureTopics(o);
      for (const part of [relay, scheduler, ...consumers.values()]) {
        if (signal.aborted) return;
        started.add(part);
        await part.start();
      }
      if (o.metrics.gauges) gauges.push(...observeGauges(o, { outbox, relay, scheduler, consumers, orchestrator }));
    },
    async stop() {
      // Gauges first: a stopped part has nothing true to report.
      for (const unregister of gauges.splice(0)) unregister();
      const errors: unknown[] = [];
      const stopAll = async (list: Lifecycle[]) => {
        const results = await Promise.allSettled(list.map((part) => part.stop()));
        for (const r of results) if (r.status === 'rejected') errors.push(r.reason);
      };
      // Consumers first (what they emit is enqueued before the relay stops), then the
      // scheduler, then the relay; a part that never started is left as it is.
      for (const group of [[...consumers.values()], [scheduler], [relay]])
        await stopAll(group.filter((part) => started.has(part)));
      if (errors.length > 0) throw asError(errors[0]);
    },
  });

  const health = watchHealth({ name: o.name, knex: o.knex, service: parts, relay, scheduler, consumers });

  return {
    name: o.name,
    outbox,
    relay,
    scheduler,
    consumers,
    get orchestrator() {
      if (!orchestrator)
        throw new InvalidOptionError(
          `service '${o.name}' runs no sagas: configure createService({ sagas: { definitions, replyTopic } })`,
        );
      return orchestrator;
    },
    get state() {
      return parts.state;
    },
    start: () => parts.start(),
    stop: () => parts.stop(),
    parts: () => [
      { part: 'relay', state: relay.state },
      { part: 'scheduler', state: scheduler.state },
      ...[...consumers].map(([name, c]) => ({ part: `consumer ${name}`, state: c.state })),
    ],
    health,
  };
}

/** The service's gauges (outbox, relay, scheduler, each consumer's lag, sagas); each entry unregisters one set. */
function observeGauges(
  o: ResolvedServiceOptions,
  parts: {
    outbox: Outbox;
    relay: Relay;
    scheduler: Scheduler;
    consumers: Map<string, Consumer>;
    orchestrator: SagaOrchestrator | undefined;
  },
): Array<() => void> {
  const { outbox, relay, scheduler, consumers, orchestrator } = parts;
  const intervalMs = o.metrics.gaugeIntervalMs;
  return [
    observeOutboxGauges(outbox, { intervalMs }),
    observeRelayGauges(relay),
    observeSchedulerGauges(scheduler),
    ...[...consumers.values()].map((c) => observeConsumerGauges(c)),
    ...(orchestrator ? [observeSagaGauges(orchestrator, { intervalMs })] : []),
  ];
}

interface Wiring {
  o: ResolvedServiceOptions;
  outbox: Outbox;
  orchestrator: SagaOrchestrator | undefined;
  participant: Participant | undefined;
}

function buildOrchestrator(o: ResolvedServiceOptions, outbox: Outbox): SagaOrchestrator {
  const { definitions, replyTopic, consumer: _, ...sagaOptions } = o.sagas!;
  return createSagaOrchestrator({
    ...sagaOptions,
    knex: o.knex,
    outbox,
    replyTopic,
    sagas: definitions,
    logger: o.logger,
    ...(o.instanceId ? { instanceId: o.instanceId } : {}),
  });
}

function buildConsumer({ o, outbox, orchestrator, participant }: Wiring, c: ResolvedConsumer): Consumer {
  const { handlers, commands, groupId, role, ...consumerOptions } = c;
  const consumer = createConsumer({
    connectTimeoutMs: o.connectTimeoutMs,
    ...consumerOptions,
    outbox,
    subscriber: o.transport.subscriber({ groupId }),
    logger: o.logger,
    ...(o.instanceId ? { instanceId: o.instanceId } : {}),
  });
  if (role === 'saga-replies' && orchestrator) consumer.handle(SAGA_REPLY_TYPE, orchestrator.replyHandler);
  // The specs erase each payload type; parse and handler were paired by parsed() /
  // parsedCommand(), so the handler gets what its parse returns.
  for (const [type, spec] of Object.entries(handlers)) {
    if (typeof spec === 'function') consumer.handle(type, spec);
    else consumer.handle<unknown>(type, spec.handler as Handler<unknown>, { parse: spec.parse });
  }
  for (const [type, spec] of Object.entries(commands)) {
    const command =
      typeof spec === 'function'
        ? participant!.handle(spec)
        : participant!.handle<unknown>(spec.handler as CommandHandler<unknown>, { parse: spec.parse });
    consumer.handle(type, command);
  }
  return consumer;
}

async function migrate({ o, outbox, orchestrator, participant }: Wiring, consumers: Map<string, Consumer>) {
  await outbox.migrate(o.shards === undefined ? {} : { shards: o.shards });
  await orchestrator?.migrate();
  await participant?.migrate(o.knex);
  // Consumers sharing one inbox table migrate it once.
  const inboxes = new Map<string, Consumer>();
  for (const c of consumers.values()) inboxes.set(`${c.options.schema}.${c.options.table}`, c);
  for (const c of inboxes.values()) await c.migrate();
}

/** The declared topics, before anything publishes or subscribes; each creation and note logged once. */
async function ensureTopics(o: ResolvedServiceOptions): Promise<void> {
  const ensured = await o.transport.ensureTopics!(o.topics, { timeoutMs: o.connectTimeoutMs });
  for (const topic of ensured) {
    if (topic.action === 'created')
      o.logger({
        level: 'info',
        namespace: 'service',
        message: `service '${o.name}': created topic ${topic.name} (${topic.partitions} partitions, replication ${topic.replicationFactor})`,
        topic: topic.name,
      });
    for (const note of topic.notes)
      o.logger({ level: 'warn', namespace: 'service', message: `topic ${topic.name}: ${note}`, topic: topic.name });
  }
}

function connectionNeeds(o: ResolvedServiceOptions, consumers: Map<string, Consumer>): ConnectionNeed[] {
  const lanes = o.relay.lanes ?? 2;
  const listen = o.relay.listen ?? true;
  return [
    // Each lane claims or marks on a connection; the keeper renews leases alongside them.
    {
      part: `relay ${lanes} lane(s) + keeper${listen ? ' + LISTEN' : ''}`,
      connections: lanes + 1 + (listen ? 1 : 0),
    },
    { part: 'scheduler', connections: 1 },
    ...[...consumers.keys()].map((name) => ({
      part: `consumer '${name}'`,
      connections: o.transport.concurrency ?? 1,
    })),
  ];
}
