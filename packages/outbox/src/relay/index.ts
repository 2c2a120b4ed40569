import {
  asError,
  type Lifecycle,
  type Listener,
  lifecycle,
  OutageTracker,
  startListener,
  TypedEmitter,
  Wakeable,
} from '@eventual/core';
import { contextOf } from '../context.js';
import type { RelayCounters, RelayEventMap, RelayEventName } from '../events.js';
import type { Outbox } from '../outbox.js';
import { LEASES_NOTICE } from '../sql/leases.js';
import type { RelayContext } from './context.js';
import { LeaseKeeper } from './keeper.js';
import { runLane } from './lane.js';
import { type RelayOptions, resolveRelayOptions } from './options.js';
import { ShardLeases } from './shard-leases.js';

export type { RelayOptions } from './options.js';
export { planShares } from './plan-shares.js';

/** Moves an outbox's pending messages to a broker; see `createRelay`. */
export interface Relay extends Lifecycle {
  /** Names this relay in the shard leases and in its events (the `instanceId` option, or the generated default). */
  readonly instanceId: string;
  /** Shards this instance holds a lease on right now. */
  ownedShards(): number[];
  /** Asks every lane to look for work now (what a NOTIFY does). */
  wake(): void;
  /** Running totals: published, failed, dead, fenced. */
  readonly counters: Readonly<RelayCounters>;
  /** The relay's events, each with its `instanceId`; returns an unsubscribe function. */
  on<E extends RelayEventName>(event: E, listener: (payload: RelayEventMap[E]) => void): () => void;
}

/**
 * Moves pending messages to the publisher, shard by shard, under leases.
 *
 * Wiring only; the parts are in this folder: `shard-leases.ts` (what this instance
 * holds), `keeper.ts` (renews them every TTL/3 so a slow publish cannot let a lease
 * expire, and rebalances at once when another relay joins, gives back or leaves), `lane.ts` (one claim-publish-mark loop per lane, shard mod lanes),
 * `publish-batch.ts` (publish and mark under the fence), `listener.ts` (LISTEN, a
 * latency hint with its own reconnect). `start()` verifies the broker within
 * `connectTimeoutMs`, reclaims this instance id's shards,
 * takes a fair share, then starts the lanes; `stop()` finishes and marks the batches
 * in flight, gives every lease back and closes the publisher.
 */
export function createRelay(outbox: Outbox, options: RelayOptions): Relay {
  const r = resolveRelayOptions(options);
  const { o, logger } = contextOf(outbox);
  const events = new TypedEmitter<RelayEventMap>('relay', logger);
  const counters: RelayCounters = { published: 0, failed: 0, dead: 0, fenced: 0 };
  const leases = new ShardLeases(r, o, events);
  let active = false;
  const stopping = new AbortController();
  const ctx: RelayContext = {
    r,
    o,
    events,
    counters,
    logger,
    leases,
    brokerOutage: new OutageTracker(),
    active: () => active,
    stopping: stopping.signal,
  };
  const wakeables = Array.from({ length: r.lanes }, () => new Wakeable());
  const wakeAll = () => {
    for (const w of wakeables) w.wake();
  };
  /**
   * A NOTIFY from enqueue names the shards it wrote: wake only their lanes, so an idle
   * lane does not run a claim for another lane's message. Another relay's lease
   * notice runs the keeper at once. Any other payload (a requeue, a prepared message's
   * commit, a reconnect) wakes every lane.
   */
  const wakeFor = (payload: string | undefined) => {
    if (payload?.startsWith(LEASES_NOTICE)) {
      if (payload !== `${LEASES_NOTICE}${r.instanceId}`) keeper.now();
      return;
    }
    if (!payload || !/^\d+(,\d+)*$/.test(payload)) return wakeAll();
    for (const shard of payload.split(',')) wakeables[Number(shard) % r.lanes]?.wake();
  };
  const reportError = (error: Error) => events.emit('relay:error', { instanceId: r.instanceId, error });
  // Every error event also reaches the logger, so nothing fails silently without a listener.
  events.on('relay:error', ({ error }) =>
    logger({ level: 'error', namespace: 'relay', message: error.message, error, instanceId: r.instanceId }),
  );
  // One line when a broker outage begins and one when it ends, never one per retry.
  events.on('relay:brokerUnavailable', ({ error }) =>
    logger({
      level: 'warn',
      namespace: 'relay',
      message: `the broker is unreachable; publishing waits for it without spending attempts: ${error.message}`,
      error,
      instanceId: r.instanceId,
    }),
  );
  events.on('relay:brokerAvailable', ({ downtimeMs }) =>
    logger({
      level: 'info',
      namespace: 'relay',
      message: `the broker is reachable again after ${downtimeMs} ms; publishing resumed`,
      instanceId: r.instanceId,
    }),
  );
  let lanes: Promise<void> | undefined;
  let listener: Listener | undefined;
  const keeper = new LeaseKeeper({
    leases,
    leaseTtlMs: r.leaseTtlMs,
    active: () => active,
    onChanged: wakeAll,
    onError: reportError,
  });

  const parts = lifecycle(`relay ${r.instanceId}`, {
    async start() {
      // Before anything else: a wrong or unreachable broker fails the start, naming it.
      await r.publisher.verify?.(r.connectTimeoutMs);
      await leases.reclaim();
      active = true;
      await leases.keep(() => active);
      keeper.start();
      if (r.listen) listener = startListener(o.knex, o.channel, wakeFor, reportError);
      // The relays already running rebalance now, not at their next keeper round.
      await leases.announce().catch((error: unknown) => reportError(asError(error)));
      lanes = Promise.all(wakeables.map((wakeable, lane) => runLane(ctx, lane, wakeable))).then(() => {});
    },
    async stop() {
      active = false;
      stopping.abort();
      wakeAll();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, r.stopTimeoutMs);
      });
      await Promise.race([lanes, timeout]);
      clearTimeout(timer);
      // No keeper tick may take or renew a lease after the release below.
      await keeper.stop();
      await listener?.stop();
      try {
        await leases.releaseAll();
        await leases.announce(); // the others take our shards now, not at their next round
      } catch (error) {
        reportError(asError(error)); // the leases expire on their own within leaseTtlMs
      }
      await r.publisher.close().catch((error: unknown) => reportError(asError(error)));
    },
  });

  return {
    instanceId: r.instanceId,
    get state() {
      return parts.state;
    },
    start: () => parts.start(),
    stop: () => parts.stop(),
    ownedShards: () => leases.list(),
    wake: wakeAll,
    counters,
    on: (event, listener) => events.on(event, listener),
  };
}
