import type { Logger, OutageTracker, TypedEmitter } from '@eventual/core';
import type { RelayCounters, RelayEventMap } from '../events.js';
import type { ResolvedOutboxOptions } from '../options.js';
import type { ResolvedRelayOptions } from './options.js';
import type { ShardLeases } from './shard-leases.js';

/** What the parts of one relay share: passed explicitly to each of them. */
export interface RelayContext {
  r: ResolvedRelayOptions;
  o: ResolvedOutboxOptions;
  events: TypedEmitter<RelayEventMap>;
  counters: RelayCounters;
  logger: Logger;
  leases: ShardLeases;
  /** The broker outage going on, if any, shared by every lane so it is reported once. */
  brokerOutage: OutageTracker;
  /** True from start until stop() begins: loops run while it holds. */
  active(): boolean;
  /** Aborts when stop() begins: cuts backoff waits short. */
  stopping: AbortSignal;
}
