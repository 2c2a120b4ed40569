import {
  asError,
  type GaugeReading,
  type GaugeSpec,
  InvalidOptionError,
  integer,
  observeGauges,
  type Scheduler,
} from '@eventual/core';
import { contextOf } from './context.js';
import type { Outbox } from './outbox.js';
import type { Relay } from './relay/index.js';
import { selectGauges } from './sql/gauges.js';
import { run } from './sql/statement.js';

/** Options of `observeOutboxGauges` (and of the other packages' gauges). */
export interface GaugeOptions {
  /**
   * The database is read at most once per this many ms, however many readers collect
   * or how often they scrape; 0 reads at every collection. Default 10,000 ms: set it to
   * your scrape interval.
   */
  intervalMs?: number;
}

/** The default of `GaugeOptions.intervalMs`. */
export const DEFAULT_GAUGE_INTERVAL_MS = 10_000;

/** A gauge interval (`GaugeOptions.intervalMs`), validated: an `InvalidOptionError` names `option`. */
export function gaugeInterval(option: string, value: unknown): number {
  return integer(option, value ?? DEFAULT_GAUGE_INTERVAL_MS, 0, 3_600_000);
}

const GAUGES = {
  pending: { name: 'eventual.outbox.pending', unit: '{message}', description: 'Messages waiting for the relay.' },
  oldestPending: {
    name: 'eventual.outbox.oldest_pending.age',
    unit: 's',
    description: 'Age of the oldest pending message: how far behind the relay is.',
  },
  prepared: {
    name: 'eventual.outbox.prepared',
    unit: '{message}',
    description: 'Prepared messages not yet committed or rolled back.',
  },
  checkbackDue: {
    name: 'eventual.outbox.checkback.due',
    unit: '{message}',
    description: 'Prepared messages whose producer went silent, due for the check-back.',
  },
  dead: {
    name: 'eventual.outbox.dead',
    unit: '{message}',
    description: 'Messages that went dead and wait for requeue(): alert on > 0.',
  },
} as const;

type OutboxGauge = keyof typeof GAUGES;

interface GaugeRow {
  topic: string;
  pending: number;
  oldest_pending_s: number;
  prepared: number;
  checkback_due: number;
  dead: number;
}

/**
 * Registers the outbox's observable gauges with the registered OpenTelemetry meter
 * provider, per topic (`messaging.destination.name`): `eventual.outbox.pending`,
 * `eventual.outbox.oldest_pending.age` (seconds), `eventual.outbox.prepared`,
 * `eventual.outbox.checkback.due` and `eventual.outbox.dead`. All come from one query
 * of the outbox table, made at most once per `intervalMs`. Returns the function that
 * unregisters them. `createService` registers them at start and removes them at stop.
 */
export function observeOutboxGauges(outbox: Outbox, options: GaugeOptions = {}): () => void {
  const { o, logger } = contextOf(outbox);
  const intervalMs = gaugeInterval('observeOutboxGauges intervalMs', options.intervalMs);
  return observeGauges(
    '@eventual/outbox',
    GAUGES,
    async () => {
      const rows = await run<GaugeRow>(o.knex, selectGauges(o));
      return rows.flatMap((row): Array<GaugeReading<OutboxGauge>> => {
        const attributes = { 'messaging.destination.name': row.topic };
        return [
          { gauge: 'pending', value: row.pending, attributes },
          { gauge: 'oldestPending', value: row.oldest_pending_s, attributes },
          { gauge: 'prepared', value: row.prepared, attributes },
          { gauge: 'checkbackDue', value: row.checkback_due, attributes },
          { gauge: 'dead', value: row.dead, attributes },
        ];
      });
    },
    {
      intervalMs,
      onError: (error) =>
        logger({
          level: 'warn',
          namespace: 'outbox',
          message: `outbox gauges: reading ${o.tables.messages} failed, nothing reported this time`,
          error: asError(error),
        }),
    },
  );
}

const RELAY_GAUGES = {
  shards: {
    name: 'eventual.relay.shards.owned',
    unit: '{shard}',
    description: 'Shards whose lease this relay holds: 0 on every instance means nothing relays.',
  },
  lastPublish: {
    name: 'eventual.relay.last_publish.time',
    unit: 's',
    description: 'When this relay last published and marked a batch, in seconds since the Unix epoch.',
  },
} as const;

/**
 * Registers the relay's gauges, read from memory at each collection:
 * `eventual.relay.shards.owned` and `eventual.relay.last_publish.time` (Unix seconds
 * of the last batch published and marked; absent until the first). No attributes: the
 * scrape's instance label tells the relays apart. An idle relay publishes nothing, so
 * a staleness alert pairs the time with a pending backlog. Returns the function that
 * unregisters them; `createService` registers them at start and removes them at stop.
 */
export function observeRelayGauges(relay: Relay): () => void {
  if (typeof (relay as Partial<Relay> | null)?.ownedShards !== 'function')
    throw new InvalidOptionError('observeRelayGauges(relay) needs a relay created with createRelay()');
  let lastPublishMs: number | undefined;
  return fedByEvents(
    RELAY_GAUGES,
    () =>
      relay.on('relay:published', () => {
        lastPublishMs = Date.now();
      }),
    () => [
      { gauge: 'shards', value: relay.ownedShards().length, attributes: {} },
      ...(lastPublishMs === undefined
        ? []
        : [{ gauge: 'lastPublish' as const, value: lastPublishMs / 1000, attributes: {} }]),
    ],
  );
}

const SCHEDULER_GAUGES = {
  lastSuccess: {
    name: 'eventual.scheduler.last_success.time',
    unit: 's',
    description: 'When a scheduled job last succeeded on this instance, in seconds since the Unix epoch, per job.',
  },
} as const;

/**
 * Registers `eventual.scheduler.last_success.time` per job (`eventual.job.name`): Unix
 * seconds of the job's last scheduled run that succeeded on this instance, from its
 * `scheduler:ran` events. A run executes on one instance of the cluster per slot, so
 * take the `max` over instances. Returns the function that unregisters it;
 * `createService` registers it at start and removes it at stop.
 */
export function observeSchedulerGauges(scheduler: Scheduler): () => void {
  if (typeof (scheduler as Partial<Scheduler> | null)?.runNow !== 'function')
    throw new InvalidOptionError('observeSchedulerGauges(scheduler) needs a scheduler created with createScheduler()');
  const lastSuccessMs = new Map<string, number>();
  return fedByEvents(
    SCHEDULER_GAUGES,
    () =>
      scheduler.on('scheduler:ran', ({ job }) => {
        lastSuccessMs.set(job, Date.now());
      }),
    () =>
      [...lastSuccessMs].map(([job, ms]) => ({
        gauge: 'lastSuccess' as const,
        value: ms / 1000,
        attributes: { 'eventual.job.name': job },
      })),
  );
}

/**
 * Gauges read from this process's memory at each collection, kept current by events:
 * `listen` subscribes (and returns the unsubscribe), `read` gives the values. Reading
 * variables cannot fail, so there is nothing to report. Returns what undoes both.
 */
function fedByEvents<K extends string>(
  specs: Readonly<Record<K, GaugeSpec>>,
  listen: () => () => void,
  read: () => Array<GaugeReading<K>>,
): () => void {
  const off = listen();
  const unregister = observeGauges('@eventual/outbox', specs, async () => read(), {
    intervalMs: 0,
    onError: () => {},
  });
  return () => {
    off();
    unregister();
  };
}
