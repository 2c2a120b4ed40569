import { InvalidOptionError, type JsonValue } from '@eventual/outbox';
import { createInboxCleanup } from './cleanup.js';
import { asError } from './errors.js';
import { type ConsumerCounters, type ConsumerEventMap, type ConsumerEventName, Events } from './events.js';
import type { Handler, HandlerOptions, RegisteredHandler } from './handler.js';
import { migrateInbox } from './migrations.js';
import { type ConsumerOptions, type ResolvedConsumerOptions, resolveConsumerOptions } from './options.js';
import { createPipeline } from './pipeline.js';
import { pause, UNAVAILABLE_BACKOFF } from './retry.js';
import { probeInbox } from './sql/inbox.js';
import { run } from './sql/statement.js';
import type { Delivery, InboundRecord, TopicPartition } from './subscriber.js';

export type ConsumerState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface PartitionLag extends TopicPartition {
  /** Records behind the partition's high watermark after the last record this instance settled. */
  lag: number;
  observedAt: Date;
}

export interface ConsumerLag {
  total: number;
  /** Partitions this instance owns and has settled at least one record of. */
  partitions: PartitionLag[];
}

export interface Consumer {
  readonly name: string;
  readonly state: ConsumerState;
  readonly options: ResolvedConsumerOptions;
  /** Creates or upgrades the inbox table (idempotent). The outbox has its own `migrate()`. */
  migrate(): Promise<void>;
  /**
   * Registers the handler for a message type; returns a function that unregisters it.
   * Records of a type without a handler follow `onUnknownType`.
   */
  handle<P = JsonValue>(type: string, handler: Handler<P>, options?: HandlerOptions<P>): () => void;
  /** Checks the inbox and outbox tables, starts the retention schedule and joins the group. */
  start(): Promise<void>;
  /**
   * Graceful: the attempt in flight on each partition finishes and commits, its offset is
   * committed, then the instance leaves the group. A record waiting out a retry backoff
   * is left for redelivery (its attempt count is kept in the inbox).
   */
  stop(): Promise<void>;
  /** One retention cleanup run now (outside the schedule); returns the rows deleted. */
  cleanup(): Promise<number>;
  lag(): ConsumerLag;
  readonly counters: Readonly<ConsumerCounters>;
  on<E extends ConsumerEventName>(event: E, listener: (payload: ConsumerEventMap[E]) => void): () => void;
}

/**
 * An idempotent consumer: each record is handled in one PostgreSQL transaction that
 * also records `(consumer, message id)` in the inbox, and its offset is committed only
 * after that transaction committed. In batch mode (`batchSize` > 1) consecutive records
 * of a partition share that transaction. See pipeline.ts for the fixed order of steps.
 */
export function createConsumer(options: ConsumerOptions): Consumer {
  const o = resolveConsumerOptions(options);
  const events = new Events();
  const counters: ConsumerCounters = {
    processed: 0,
    duplicates: 0,
    retried: 0,
    deadLettered: 0,
    ignored: 0,
    errors: 0,
  };
  const handlers = new Map<string, RegisteredHandler>();
  const lag = new Map<string, PartitionLag>();
  const pipeline = createPipeline({ o, handlers, events, counters });
  const cleanup = createInboxCleanup(o, events, counters);
  const stopping = new AbortController();
  let state: ConsumerState = 'idle';
  let starting: Promise<void> | undefined;
  let stopped: Promise<void> | undefined;

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
        topic: first.topic,
        partition: first.partition,
        offset: first.offset,
        error: asError(error),
        fatal: false,
      });
      await pause(UNAVAILABLE_BACKOFF.maxMs, signal);
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
    events.emit('consumer:assigned', { consumer: o.name, partitions });
  }

  function subscriberError(error: Error, fatal: boolean) {
    counters.errors += 1;
    events.emit('consumer:error', { consumer: o.name, error, fatal });
  }

  async function start(): Promise<void> {
    await run(o.knex, probeInbox(o.inboxTable));
    await o.outbox.stats(); // fails with SchemaNotReadyError if the outbox (for dead letters) is missing
    cleanup.start();
    await o.subscriber.subscribe(o.topics, { maxRecords: o.batchSize, deliver, error: subscriberError, assigned });
  }

  async function stop(): Promise<void> {
    stopping.abort();
    await starting?.catch(() => {});
    try {
      await o.subscriber.close();
    } catch (error) {
      subscriberError(asError(error), false);
    }
    await cleanup.stop();
    state = 'stopped';
  }

  return {
    name: o.name,
    get state() {
      return state;
    },
    options: o,
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
      return () => {
        if (handlers.get(type) === registered) handlers.delete(type);
      };
    },
    async start() {
      if (state !== 'idle')
        throw new InvalidOptionError(
          `consumer '${o.name}' cannot start: it is ${state} (create a new consumer to start again)`,
        );
      state = 'starting';
      starting = start();
      try {
        await starting;
        if (state === 'starting') state = 'running'; // not if stop() was called meanwhile
      } catch (error) {
        starting = undefined;
        stopped ??= stop();
        await stopped;
        throw error;
      }
    },
    stop() {
      if (state === 'idle') state = 'stopped';
      if (state === 'stopped') return stopped ?? Promise.resolve();
      state = 'stopping';
      stopped ??= stop();
      return stopped;
    },
    cleanup: () => cleanup.runNow(),
    lag() {
      const partitions = [...lag.values()].sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
      return { total: partitions.reduce((sum, p) => sum + p.lag, 0), partitions };
    },
    counters,
    on: (event, listener) => events.on(event, listener),
  };
}
