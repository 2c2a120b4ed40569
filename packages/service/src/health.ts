import type { Consumer } from '@eventual/consumer';
import { asError, bool, integer, type Lifecycle, type Scheduler } from '@eventual/core';
import type { Relay } from '@eventual/outbox';
import type { Knex } from 'knex';

/** One thing the health of a service depends on, and whether it is fine. */
export interface HealthCheck {
  /** What was checked: `service`, `database`, `broker`, `relay`, `scheduler`, `consumer <name>`. */
  name: string;
  /** Whether it is fine. */
  ok: boolean;
  /** Why it is not (or, for the relay, how it stands); absent when there is nothing to say. */
  reason?: string;
}

/** What `service.health()` returns. */
export interface ServiceHealth {
  /**
   * The process's loops are not dead: false once the service stopped, a part stopped on
   * its own while the service runs, or a consumer's subscriber gave up (a fatal error).
   * A liveness probe restarts the process on false; dependencies being down never make
   * it false (restarting would not bring them back).
   */
  live: boolean;
  /** Started, every part running, and the database and broker reachable: route traffic here. */
  ready: boolean;
  /** Each check, failed ones with their reason. */
  checks: HealthCheck[];
}

/** Options of `service.health()`. */
export interface HealthOptions {
  /** How long the database check (`select 1`) may take before it counts as unreachable. Default 2,000 ms. */
  timeoutMs?: number;
  /**
   * `false` leaves the database check out (and `ready` does not account for it): what
   * a liveness probe wants, since `live` never depends on the database and a hanging
   * database must not make the probe itself time out. Default true.
   */
  database?: boolean;
}

/** The default bound of the database check. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 2_000;

/** What a part last said about the broker: reachable until it reports an outage. */
interface BrokerState {
  /** The error of the outage it reported, until it reports the broker available again. */
  unavailable?: { error: Error; since: Date };
}

interface ConsumerWatch {
  consumer: Consumer;
  broker: BrokerState;
  /** Partitions were assigned since the start (an empty assignment is still a joined group). */
  joined: boolean;
  /** The subscriber gave up: the consumer receives nothing more. */
  fatal?: Error;
}

/** The parts whose health a service reports. */
export interface HealthParts {
  /** The service's `name`, for the reasons. */
  name: string;
  knex: Knex;
  service: Lifecycle;
  relay: Relay;
  scheduler: Scheduler;
  consumers: ReadonlyMap<string, Consumer>;
}

/**
 * Watches the events of a service's parts from its creation on (broker outages,
 * group joins, fatal consumer errors), so that a health check reads the last known
 * state instead of opening a broker connection per call; only the database is asked,
 * with one bounded `select 1`.
 */
export function watchHealth(parts: HealthParts): (options?: HealthOptions) => Promise<ServiceHealth> {
  const relayBroker: BrokerState = {};
  parts.relay.on('relay:brokerUnavailable', ({ error }) => {
    relayBroker.unavailable = { error, since: new Date() };
  });
  parts.relay.on('relay:brokerAvailable', () => {
    delete relayBroker.unavailable;
  });
  const consumers = [...parts.consumers].map(([name, consumer]) => {
    const watch: ConsumerWatch = { consumer, broker: {}, joined: false };
    consumer.on('consumer:assigned', () => {
      watch.joined = true;
    });
    consumer.on('consumer:error', ({ error, fatal }) => {
      if (fatal) watch.fatal = error;
    });
    consumer.on('consumer:brokerUnavailable', ({ error }) => {
      watch.broker.unavailable = { error, since: new Date() };
    });
    consumer.on('consumer:brokerAvailable', () => {
      delete watch.broker.unavailable;
    });
    return [name, watch] as const;
  });

  return async (options = {}) => {
    const timeoutMs = integer('health() options.timeoutMs', options.timeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS, 1, 600_000);
    if (options.database !== undefined) bool('health() options.database', options.database);
    const service = parts.service.state;
    const running = service === 'running';
    const checks: HealthCheck[] = [
      running
        ? { name: 'service', ok: true }
        : { name: 'service', ok: false, reason: `service '${parts.name}' is ${service}` },
      ...(options.database === false ? [] : [await databaseCheck(parts.knex, timeoutMs)]),
      brokerCheck([['relay', relayBroker], ...consumers.map(([name, w]) => [`consumer ${name}`, w.broker] as const)]),
      relayCheck(parts.relay),
      partCheck('scheduler', parts.scheduler),
      ...consumers.map(([name, watch]) => consumerCheck(name, watch)),
    ];
    // A part that stopped while the service runs stopped on its own: its loop is dead.
    const deadPart =
      running && [parts.relay, parts.scheduler, ...parts.consumers.values()].some((p) => p.state === 'stopped');
    const fatal = consumers.some(([, w]) => w.fatal !== undefined);
    return {
      live: service !== 'stopped' && !deadPart && !fatal,
      ready: checks.every((c) => c.ok),
      checks,
    };
  };
}

/** `select 1` within `timeoutMs`: a pool that cannot hand out a connection counts as unreachable too. */
async function databaseCheck(knex: Knex, timeoutMs: number): Promise<HealthCheck> {
  let timer: NodeJS.Timeout | undefined;
  // A knex query runs again at each then(): make it one promise, run once.
  const query = Promise.resolve(knex.raw('select 1'));
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const outcome = await Promise.race([query.then(() => 'ok' as const), timedOut]);
    if (outcome === 'ok') return { name: 'database', ok: true };
    // The query goes on in the background; its eventual failure must not be unhandled.
    query.catch(() => {});
    return { name: 'database', ok: false, reason: `database did not answer select 1 within ${timeoutMs} ms` };
  } catch (error) {
    return { name: 'database', ok: false, reason: `database unreachable: ${asError(error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

function brokerCheck(states: ReadonlyArray<readonly [string, BrokerState]>): HealthCheck {
  const down = states.filter(([, s]) => s.unavailable !== undefined);
  if (down.length === 0) return { name: 'broker', ok: true };
  const reasons = down.map(
    ([part, s]) =>
      `${part}: broker unreachable since ${s.unavailable!.since.toISOString()} (${s.unavailable!.error.message})`,
  );
  return { name: 'broker', ok: false, reason: reasons.join('; ') };
}

function relayCheck(relay: Relay): HealthCheck {
  if (relay.state !== 'running') return { name: 'relay', ok: false, reason: `relay is ${relay.state}` };
  const owned = relay.ownedShards();
  // Holding no shard is a normal state when other instances hold them all: it waits for a lease.
  return owned.length === 0
    ? { name: 'relay', ok: true, reason: 'waiting for shard leases (other instances hold them all)' }
    : { name: 'relay', ok: true, reason: `holds shard leases ${owned.join(', ')}` };
}

function partCheck(name: string, part: Lifecycle): HealthCheck {
  return part.state === 'running' ? { name, ok: true } : { name, ok: false, reason: `${name} is ${part.state}` };
}

function consumerCheck(name: string, watch: ConsumerWatch): HealthCheck {
  const check = `consumer ${name}`;
  if (watch.fatal) return { name: check, ok: false, reason: `the subscriber gave up: ${watch.fatal.message}` };
  if (watch.consumer.state !== 'running')
    return { name: check, ok: false, reason: `consumer is ${watch.consumer.state}` };
  if (!watch.joined) return { name: check, ok: false, reason: 'has not joined its consumer group yet' };
  return { name: check, ok: true };
}
