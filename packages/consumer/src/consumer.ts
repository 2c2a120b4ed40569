import {
  asError,
  InvalidOptionError,
  type Lifecycle,
  type LifecycleState,
  lifecycle,
  OUTAGE_BACKOFF,
  type PeriodicJob,
  sleep,
} from '@eventual/core';
import type { JsonValue } from '@eventual/outbox';
import { cleanInbox, inboxCleanupJob } from './cleanup.js';
import { type ConsumerCounters, type ConsumerEventMap, type ConsumerEventName, Events } from './events.js';
import type { Handler, HandlerOptions, RegisteredHandler } from './handler.js';
import { migrateInbox } from './migrations.js';
import { type ConsumerOptions, type ResolvedConsumerOptions, resolveConsumerOptions } from './options.js';
import { HandlerArrivals } from './pipeline/hold.js';
import { createPipeline } from './pipeline/index.js';

import { probeInbox } from './sql/inbox.js';
import { run } from './sql/statement.js';
import type { Delivery, InboundRecord, TopicPartition } from './subscriber.js';

/** Where a consumer is in the lifecycle state table (see `LifecycleState`). */
export type ConsumerState = LifecycleState;

/** How far one partition is behind, as this instance saw it when it last settled a record of it. */
export interface PartitionLag extends TopicPartition {
  /** Records behind the partition's high watermark after the last record this instance settled. */
  lag: number;
  /** When `lag` was computed: a partition that has received nothing since keeps its last value. */
  observedAt: Date;
}

/** What `consumer.lag()` returns; computed from the deliveries, with no call to the broker. */
export interface ConsumerLag {
  /** The sum of `lag` over `partitions`. */
  total: number;
  /** Partitions this instance owns and has settled at least one record of. */
  partitions: PartitionLag[];
}

/** An idempotent consumer; see `createConsumer`. */
export interface Consumer extends Lifecycle {
  /** The `name` option: the consumer's key in the inbox, and what its events and logs call it. */
  readonly name: string;
  /** The options with their defaults applied, as the consumer runs with them. */
  readonly options: ResolvedConsumerOptions;
  /** Creates or upgrades the inbox table (idempotent). The outbox has its own `migrate()`. */
  migrate(): Promise<void>;
  /**
   * Registers the handler for a message type; returns a function that unregisters it.
   * Register handlers before `start()` (which refuses a consumer with none). A handler
   * registered after it is allowed and harmless: records of its type that arrived
   * first are held (`unknownTypeGraceMs`) and handled as soon as it is registered.
   * Records of a type without a handler after the grace follow `onUnknownType`.
   */
  handle<P = JsonValue>(type: string, handler: Handler<P>, options?: HandlerOptions<P>): () => void;
  /**
   * Refuses a consumer without handlers (`InvalidOptionError`; it stays idle, so
   * register them and start again), checks the inbox and outbox tables, the broker and
   * that every topic exists (within `connectTimeoutMs`), then joins the group.
   */
  start(): Promise<void>;
  /**
   * Graceful: the attempt in flight on each partition finishes and commits, its offset is
   * committed, then the instance leaves the group. A record waiting out a retry backoff
   * is left for redelivery (its attempt count is kept in the inbox).
   */
  stop(): Promise<void>;
  /** One retention cleanup run now (outside the schedule); returns the rows deleted. */
  cleanup(): Promise<number>;
  /**
   * The consumer's periodic jobs (inbox retention cleanup), to run once per cluster on
   * a scheduler: `createService` schedules them; otherwise pass them to yours.
   */
  readonly jobs: readonly PeriodicJob[];
  /** Records behind on the partitions this instance owns, as of each one's last settled record. */
  lag(): ConsumerLag;
  /** Running totals since the consumer was created (see `ConsumerCounters`). */
  readonly counters: Readonly<ConsumerCounters>;
  /** Adds a listener and returns the function that removes it; a listener that throws is logged once and ignored. */
  on<E extends ConsumerEventName>(event: E, listener: (payload: ConsumerEventMap[E]) => void): () => void;
}

/**
 * An idempotent consumer: each record is handled in one PostgreSQL transaction that
 * also records `(consumer, message id)` in the inbox, and its offset is committed only
 * after that transaction committed. In batch mode (`batchSize` > 1) consecutive records
 * of a partition share that transaction. See pipeline/index.ts for the fixed order of steps.
 */
export function createConsumer(options: ConsumerOptions): Consumer {
  const o = resolveConsumerOptions(options);
  const events = new Events('consumer', o.logger);
  // Every error event also reaches the logger, so nothing fails silently without a listener.
  events.on('consumer:error', ({ error, fatal, topic, partition }) =>
    o.logger({
      level: 'error',
      namespace: 'consumer',
      message: `consumer '${o.name}'${topic === undefined ? '' : ` (${topic}/${partition})`}: ${error.message}${fatal ? ' (fatal: the subscriber gave up)' : ''}`,
      error,
      instanceId: o.instanceId,
    }),
  );
  // One line when a broker outage begins and one when it ends, never one per retry.
  events.on('consumer:brokerUnavailable', ({ error }) =>
    o.logger({
      level: 'warn',
      namespace: 'consumer',
      message: `consumer '${o.name}': the broker is unreachable; records wait for it: ${error.message}`,
      error,
      instanceId: o.instanceId,
    }),
  );
  events.on('consumer:brokerAvailable', ({ downtimeMs }) =>
    o.logger({
      level: 'info',
      namespace: 'consumer',
      message: `consumer '${o.name}': the broker is reachable again after ${downtimeMs} ms`,
      instanceId: o.instanceId,
    }),
  );
  // A hold stalls a partition: say so where people look, with the fix.
  events.on('consumer:held', ({ topic, partition, offset, type, until }) =>
    o.logger({
      level: 'warn',
      namespace: 'consumer',
      message:
        `consumer '${o.name}' holds ${topic}/${partition}@${offset}: no handler for message type '${type}'; ` +
        `register one with consumer.handle('${type}', ...), else it is ${o.onUnknownType === 'ignore' ? 'skipped' : 'dead-lettered'} at ${until.toISOString()}`,
      instanceId: o.instanceId,
    }),
  );
  const counters: ConsumerCounters = {
    processed: 0,
    duplicates: 0,
    retried: 0,
    deadLettered: 0,
    ignored: 0,
    held: 0,
    errors: 0,
  };
  const handlers = new Map<string, RegisteredHandler>();
  const lag = new Map<string, PartitionLag>();
  const arrivals = new HandlerArrivals();
  const pipeline = createPipeline({ o, handlers, arrivals, events, counters });
  const stopping = new AbortController();

  async function deliver(records: InboundRecord[], delivery: Delivery): Promise<number> {
    const first = records[0];
    if (stopping.signal.aborted || !first) return 0;
    // Aborted by the subscriber (revocation) or by stop(). Linked by hand and unlinked
    // after the records: nothing accumulates on the long-lived stop signal.
    const linked = new AbortController();
    const abort = () => linked.abort();
    const { signal } = linked;
    delivery.signal.addEventListener('abort', abort);
    stopping.signal.addEventListener('abort', abort);
    if (delivery.signal.aborted) abort();
    let settled: number;
    try {
      settled =
        records.length === 1
          ? (await pipeline.settle(first, signal)) === 'done'
            ? 1
            : 0
          : await pipeline.settleBatch(records, signal);
    } catch (error) {
      // The pipeline handles every failure it knows; this is a bug. Report it, and do
      // not spin: the records are redelivered after a pause.
      counters.errors += 1;
      events.emit('consumer:error', {
        consumer: o.name,
        instanceId: o.instanceId,
        topic: first.topic,
        partition: first.partition,
        offset: first.offset,
        error: asError(error),
        fatal: false,
      });
      await sleep(OUTAGE_BACKOFF.maxMs, signal);
      return 0;
    } finally {
      delivery.signal.removeEventListener('abort', abort);
      stopping.signal.removeEventListener('abort', abort);
    }
    const last = records[settled - 1];
    if (last) {
      const behind = BigInt(delivery.highWatermark) - BigInt(last.offset) - 1n;
      lag.set(`${last.topic}\u0000${last.partition}`, {
        topic: last.topic,
        partition: last.partition,
        lag: behind > 0n ? Number(behind) : 0,
        observedAt: new Date(),
      });
    }
    return settled;
  }

  function assigned(partitions: TopicPartition[]) {
    const owned = new Set(partitions.map((p) => `${p.topic}\u0000${p.partition}`));
    for (const key of lag.keys()) if (!owned.has(key)) lag.delete(key);
    events.emit('consumer:assigned', { consumer: o.name, instanceId: o.instanceId, partitions });
  }

  function subscriberError(error: Error, fatal: boolean) {
    counters.errors += 1;
    events.emit('consumer:error', { consumer: o.name, instanceId: o.instanceId, error, fatal });
  }

  const broker = {
    brokerUnavailable: (error: Error) =>
      events.emit('consumer:brokerUnavailable', { consumer: o.name, instanceId: o.instanceId, error }),
    brokerAvailable: (downtimeMs: number) =>
      events.emit('consumer:brokerAvailable', { consumer: o.name, instanceId: o.instanceId, downtimeMs }),
  };

  const parts = lifecycle(`consumer '${o.name}'`, {
    async start() {
      arrivals.startedAt = Date.now(); // the unknown-type grace runs from here
      await run(o.knex, probeInbox(o.inboxTable));
      await o.outbox.stats(); // fails with SchemaNotReadyError if the outbox (for dead letters) is missing
      // A wrong broker or a missing topic fails the start, naming them, before joining.
      await o.subscriber.verify?.(o.topics, o.connectTimeoutMs);
      await o.subscriber.subscribe(o.topics, {
        maxRecords: o.batchSize,
        deliver,
        error: subscriberError,
        assigned,
        ...broker,
      });
    },
    async stop() {
      stopping.abort();
      try {
        await o.subscriber.close();
      } catch (error) {
        subscriberError(asError(error), false);
      }
    },
  });

  return {
    name: o.name,
    get state() {
      return parts.state;
    },
    options: o,
    jobs: [inboxCleanupJob(o, events, counters)],
    migrate: () => migrateInbox(o.knex, { schema: o.schema, table: o.table }),
    handle(type, handler, handlerOptions = {}) {
      if (typeof type !== 'string' || type.length === 0 || type.length > 200)
        throw new InvalidOptionError(`handle() needs a message type (1-200 characters), got ${JSON.stringify(type)}`);
      if (typeof handler !== 'function')
        throw new InvalidOptionError(`handle('${type}', handler) needs a function ({ trx, message, outbox }) => ...`);
      const { parse } = handlerOptions;
      if (parse !== undefined && typeof parse !== 'function')
        throw new InvalidOptionError(`handle('${type}', handler, { parse }) needs parse to be a function`);
      if (handlers.has(type))
        throw new InvalidOptionError(`a handler for '${type}' is already registered on '${o.name}'`);
      const registered: RegisteredHandler = { handler: handler as Handler<unknown>, parse };
      handlers.set(type, registered);
      arrivals.notify(); // records of this type held meanwhile are handled now
      return () => {
        if (handlers.get(type) === registered) handlers.delete(type);
      };
    },
    async start() {
      // Checked before the state changes: the consumer stays idle, to be started again.
      if (parts.state === 'idle' && handlers.size === 0)
        throw new InvalidOptionError(
          `consumer '${o.name}' has no handlers: register one per message type it reads with ` +
            `consumer.handle(type, handler) before start() (with createService, declare them in ` +
            `consumers: [{ handlers }]); started without, every record would be held and then dead-lettered`,
        );
      return parts.start();
    },
    stop: () => parts.stop(),
    cleanup: () => cleanInbox(o, events),
    lag() {
      const partitions = [...lag.values()].sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
      return { total: partitions.reduce((sum, p) => sum + p.lag, 0), partitions };
    },
    counters,
    on: (event, listener) => events.on(event, listener),
  };
}
