import { type Consumer, createConsumer } from '@eventual/consumer';
import { asError, type Lifecycle, type LifecycleState, lifecycle, type Scheduler } from '@eventual/core';
import { createOutbox, createRelay, createScheduler, type Outbox, type Relay } from '@eventual/outbox';
import { type ResolvedServiceOptions, resolveServiceOptions, type ServiceOptions } from './options.js';
import { type ConnectionNeed, checkPool } from './pool.js';

/** A service's eventual parts, assembled, migrated, started and stopped in order. */
export interface Service extends Lifecycle {
  readonly name: string;
  /** Enqueue and prepare messages in your transactions through it. */
  readonly outbox: Outbox;
  readonly relay: Relay;
  /** The one scheduler of the service: outbox jobs, inbox cleanup, saga deadlines, yours. */
  readonly scheduler: Scheduler;
  /** The service's consumers by name. */
  readonly consumers: ReadonlyMap<string, Consumer>;
  /** Each part and its state, for a health check. */
  parts(): Array<{ part: string; state: LifecycleState }>;
}

/**
 * The facade a service uses: from one options object it builds the outbox, the relay
 * and its publisher, the scheduler with every package's periodic jobs, and the
 * consumers with their handlers. `start()` migrates (unless `migrate: false`), checks
 * the knex pool can hold what the parts need, then starts relay, scheduler and
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
    ...o.relay,
    publisher: o.transport.publisher(),
    ...(instanceId ? { instanceId } : {}),
  });
  const consumers = new Map(o.consumers.map((c) => [c.name, buildConsumer(o, outbox, c)] as const));
  const scheduler = createScheduler(outbox, {
    ...o.scheduler,
    ...(instanceId ? { instanceId } : {}),
    jobs: [...(o.scheduler.jobs ?? []), ...[...consumers.values()].flatMap((c) => c.jobs)],
  });
  const started: Lifecycle[] = [];

  const parts = lifecycle(`service '${o.name}'`, {
    async start(signal) {
      checkPool(o.knex, connectionNeeds(o, consumers));
      if (o.migrate) await migrate(o, outbox, consumers);
      for (const part of [relay, scheduler, ...consumers.values()]) {
        if (signal.aborted) return;
        started.push(part);
        await part.start();
      }
    },
    async stop() {
      const errors: unknown[] = [];
      const stopAll = async (list: Lifecycle[]) => {
        const results = await Promise.allSettled(list.map((part) => part.stop()));
        for (const r of results) if (r.status === 'rejected') errors.push(r.reason);
      };
      // Consumers first (what they emit is enqueued before the relay stops), then the
      // scheduler, then the relay.
      await stopAll(started.filter((p) => [...consumers.values()].includes(p as Consumer)));
      await stopAll(started.filter((p) => p === scheduler));
      await stopAll(started.filter((p) => p === relay));
      if (errors.length > 0) throw asError(errors[0]);
    },
  });

  return {
    name: o.name,
    outbox,
    relay,
    scheduler,
    consumers,
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
  };
}

function buildConsumer(o: ResolvedServiceOptions, outbox: Outbox, c: ResolvedServiceOptions['consumers'][number]) {
  const { handlers, groupId, ...consumerOptions } = c;
  const consumer = createConsumer({
    ...consumerOptions,
    outbox,
    subscriber: o.transport.subscriber({ groupId }),
    logger: o.logger,
    ...(o.instanceId ? { instanceId: o.instanceId } : {}),
  });
  for (const [type, spec] of Object.entries(handlers)) {
    if (typeof spec === 'function') consumer.handle(type, spec);
    else {
      const { handler, ...handlerOptions } = spec;
      consumer.handle(type, handler, handlerOptions);
    }
  }
  return consumer;
}

async function migrate(o: ResolvedServiceOptions, outbox: Outbox, consumers: Map<string, Consumer>) {
  await outbox.migrate(o.shards === undefined ? {} : { shards: o.shards });
  // Consumers sharing one inbox table migrate it once.
  const inboxes = new Map<string, Consumer>();
  for (const c of consumers.values()) inboxes.set(`${c.options.schema}.${c.options.table}`, c);
  for (const c of inboxes.values()) await c.migrate();
}

function connectionNeeds(o: ResolvedServiceOptions, consumers: Map<string, Consumer>): ConnectionNeed[] {
  const lanes = o.relay.lanes ?? 2;
  const listen = o.relay.listen ?? true;
  return [
    { part: `relay ${lanes} lane(s)${listen ? ' + LISTEN' : ''}`, connections: lanes + (listen ? 1 : 0) },
    { part: 'scheduler', connections: 1 },
    ...[...consumers.keys()].map((name) => ({
      part: `consumer '${name}'`,
      connections: o.transport.concurrency ?? 1,
    })),
  ];
}
