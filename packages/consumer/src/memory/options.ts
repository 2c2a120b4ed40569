import { bool, integer, knownKeys, nonEmptyString, object } from '@eventual/core';

/** Options of `createMemoryBroker`; an unknown key or a wrong value throws `InvalidOptionError`. */
export interface MemoryBrokerOptions {
  /**
   * Partitions of a topic created on first use (publish or subscribe). Default 1,
   * Kafka's own default (num.partitions): one total order, the most predictable for a
   * unit test. Use more to exercise per-key order and partitions handled concurrently;
   * records are then spread by a hash of their key.
   */
  partitions?: number;
  /**
   * Pause before a record that `deliver` left unsettled is delivered again, so a
   * delivery that keeps failing does not spin. Default 100 ms.
   */
  redeliveryDelayMs?: number;
}

/** Options of `broker.subscriber(...)`: one member of a consumer group. */
export interface MemorySubscriberOptions {
  /** The consumer group: subscribers with the same group share partitions and committed offsets. */
  groupId: string;
  /**
   * Where a group with no committed offset starts: the first record (default, as the
   * Kafka subscriber) or only records published after its partitions are assigned.
   */
  fromBeginning?: boolean;
}

export interface ResolvedMemoryBrokerOptions {
  partitions: number;
  redeliveryDelayMs: number;
}

export function resolveBrokerOptions(options: MemoryBrokerOptions = {}): ResolvedMemoryBrokerOptions {
  object('createMemoryBroker options', options);
  knownKeys('createMemoryBroker', options, ['partitions', 'redeliveryDelayMs']);
  return {
    partitions: integer('partitions', options.partitions ?? 1, 1, 10_000),
    redeliveryDelayMs: integer('redeliveryDelayMs', options.redeliveryDelayMs ?? 100, 1, 60_000),
  };
}

export function resolveSubscriberOptions(options: MemorySubscriberOptions): Required<MemorySubscriberOptions> {
  object('subscriber options', options);
  knownKeys('broker.subscriber', options, ['groupId', 'fromBeginning']);
  return {
    groupId: nonEmptyString('groupId', options.groupId, 249),
    fromBeginning: bool('fromBeginning', options.fromBeginning ?? true),
  };
}
