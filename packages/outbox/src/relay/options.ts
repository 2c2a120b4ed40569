import {
  type BackoffOptions,
  type BackoffPolicy,
  backoff,
  bool,
  connectTimeout,
  defaultInstanceId,
  InvalidOptionError,
  integer,
  nonEmptyString,
  oneOf,
  optionsObject,
} from '@eventual/core';
import type { Publisher } from '../publisher.js';

/** Options of `createRelay`; an unknown key or a value out of range throws `InvalidOptionError`. */
export interface RelayOptions {
  /**
   * Where messages go; `createKafkaPublisher({ kafka })` for Kafka. The relay owns it:
   * `stop()` closes it, as a consumer closes its subscriber.
   */
  publisher: Publisher;
  /**
   * Names this relay in the shard leases; unique among the relays running at one time.
   * Give a name that is stable across restarts of the same deployment slot (a pod name
   * from a StatefulSet, a host name), and a relay restarted after a crash takes its
   * shards back at once under a new fencing token instead of waiting for its old
   * leases to expire (`leaseTtlMs`). Default `<hostname>-<pid>-<random>`, new for
   * every process.
   */
  instanceId?: string;
  /** Messages per claim and publish. Default 500. */
  batchSize?: number;
  /**
   * Batches in flight at once. The owned shards are split into this many lanes
   * (shard mod lanes), each a loop of its own (claim, publish, mark), so one lane's
   * database round trips overlap another's publish. A key lives in one shard, so in
   * one lane: per-key order holds. Default 2.
   */
  lanes?: number;
  /** Fallback poll when no NOTIFY arrives. Default 1,000 ms. */
  pollIntervalMs?: number;
  /** Shard lease time to live; a crashed instance's shards move on within it. Default 15,000 ms. */
  leaseTtlMs?: number;
  /** Publication attempts before a message goes `dead`. Default 10. */
  maxAttempts?: number;
  /** Per-message retry delay. Default 1 s doubling to 5 min, 50% jitter. */
  backoff?: BackoffOptions;
  /** What to do with a published row: keep it as `published` (default) or delete it. */
  onPublished?: 'mark' | 'delete';
  /** LISTEN for enqueue notifications (a latency hint; polling stays the truth). Default true. */
  listen?: boolean;
  /** How long `stop()` waits for the in-flight batch before giving its leases up anyway. Default 30,000 ms. */
  stopTimeoutMs?: number;
  /**
   * How long `start()` waits for the broker (`publisher.verify`) before it fails with a
   * `BrokerUnreachableError` naming the brokers and the reason. Default 15,000 ms.
   */
  connectTimeoutMs?: number;
}

export interface ResolvedRelayOptions {
  publisher: Publisher;
  instanceId: string;
  batchSize: number;
  lanes: number;
  pollIntervalMs: number;
  leaseTtlMs: number;
  maxAttempts: number;
  backoff: BackoffPolicy;
  onPublished: 'mark' | 'delete';
  listen: boolean;
  stopTimeoutMs: number;
  connectTimeoutMs: number;
}

const KEYS = [
  'publisher',
  'instanceId',
  'batchSize',
  'lanes',
  'pollIntervalMs',
  'leaseTtlMs',
  'maxAttempts',
  'backoff',
  'onPublished',
  'listen',
  'stopTimeoutMs',
  'connectTimeoutMs',
] as const;

export function resolveRelayOptions(options: RelayOptions): ResolvedRelayOptions {
  optionsObject('createRelay', options, KEYS, 'with at least { publisher }');
  const { publisher } = options;
  if (!publisher || typeof publisher.publish !== 'function' || typeof publisher.close !== 'function') {
    throw new InvalidOptionError(
      'publisher must implement { publish(records), close() }, e.g. createKafkaPublisher({ kafka })',
    );
  }
  return {
    publisher,
    instanceId: nonEmptyString('instanceId', options.instanceId ?? defaultInstanceId()),
    batchSize: integer('batchSize', options.batchSize ?? 500, 1, 10_000),
    lanes: integer('lanes', options.lanes ?? 2, 1, 64),
    pollIntervalMs: integer('pollIntervalMs', options.pollIntervalMs ?? 1_000, 10, 3_600_000),
    leaseTtlMs: integer('leaseTtlMs', options.leaseTtlMs ?? 15_000, 300, 3_600_000),
    maxAttempts: integer('maxAttempts', options.maxAttempts ?? 10, 1, 1_000),
    backoff: backoff('backoff', options.backoff, { initialMs: 1_000, maxMs: 300_000, factor: 2, jitter: 0.5 }),
    onPublished: oneOf('onPublished', options.onPublished ?? 'mark', ['mark', 'delete']),
    listen: bool('listen', options.listen ?? true),
    stopTimeoutMs: integer('stopTimeoutMs', options.stopTimeoutMs ?? 30_000, 0, 3_600_000),
    connectTimeoutMs: connectTimeout('connectTimeoutMs', options.connectTimeoutMs),
  };
}
