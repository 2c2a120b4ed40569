import {
  compareTopic,
  type EnsuredTopic,
  knownKeys,
  object,
  TopicMismatchError,
  type TopicSpec,
  topicSpecs,
} from '@eventual/core';
import type { Subscriber } from '../subscriber.js';
import { type CommittedOffset, ConsumerGroup } from './group.js';
import {
  type MemoryBrokerOptions,
  type MemorySubscriberOptions,
  resolveBrokerOptions,
  resolveSubscriberOptions,
} from './options.js';
import { createMemoryPublisher, type MemoryPublisher } from './publisher.js';
import { createMemorySubscriber } from './subscriber.js';
import { type MemoryRecord, TopicRegistry } from './topics.js';

export type { CommittedOffset } from './group.js';
export type { MemoryBrokerOptions, MemorySubscriberOptions } from './options.js';
export { partitionForKey } from './partitioner.js';
export type { MemoryPublisher } from './publisher.js';
export type { MemoryRecord } from './topics.js';

/** An in-process stand-in for Kafka, for unit tests of handlers, relays and sagas. */
export interface MemoryBroker {
  /** A `Publisher` for `createRelay` (or to publish records by hand). */
  publisher(): MemoryPublisher;
  /** A `Subscriber` for `createConsumer`: a new member of consumer group `groupId`. */
  subscriber(options: MemorySubscriberOptions): Subscriber;
  /** Creates a topic with its own partition count; it must not exist yet with another one. */
  createTopic(name: string, options?: { partitions?: number }): void;
  /**
   * Creates the declared topics that are missing, with their partition count, and
   * verifies those that exist: fewer partitions than declared is a `TopicMismatchError`,
   * as on Kafka. Replication and configs are not modelled in memory: taken as declared.
   */
  ensureTopics(topics: readonly TopicSpec[]): Promise<EnsuredTopic[]>;
  /** Every record of a topic, in the order they were stored (empty for an unknown topic). */
  records(topic: string): MemoryRecord[];
  /** The offsets group `groupId` committed: the next offset it reads, per partition. */
  committed(groupId: string): CommittedOffset[];
}

/**
 * A broker in memory with the Kafka semantics eventual relies on (see README,
 * "Testing your handlers without Kafka"): keyed records hashed to partitions, offsets
 * per partition, consumer groups that commit only what `deliver` settled and share
 * partitions between their members. It replaces Kafka, not PostgreSQL: the consumer's
 * inbox and the outbox still need a real database.
 */
export function createMemoryBroker(options: MemoryBrokerOptions = {}): MemoryBroker {
  const o = resolveBrokerOptions(options);
  const topics = new TopicRegistry(o.partitions);
  const groups = new Map<string, ConsumerGroup>();
  const group = (groupId: string) => {
    const existing = groups.get(groupId) ?? new ConsumerGroup(topics);
    groups.set(groupId, existing);
    return existing;
  };
  return {
    publisher: () => createMemoryPublisher(topics),
    subscriber(subscriberOptions) {
      const s = resolveSubscriberOptions(subscriberOptions);
      return createMemorySubscriber({ ...s, redeliveryDelayMs: o.redeliveryDelayMs, topics, group: group(s.groupId) });
    },
    createTopic(name, topicOptions = {}) {
      knownKeys('createTopic', object('createTopic options', topicOptions), ['partitions']);
      topics.create(name, topicOptions.partitions ?? o.partitions);
    },
    async ensureTopics(declared) {
      const ensured: EnsuredTopic[] = [];
      for (const spec of topicSpecs('topics', declared)) {
        const existed = topics.has(spec.name);
        const partitions = existed
          ? topics.partitionCount(spec.name)
          : topics.create(spec.name, spec.partitions).length;
        const actual = { partitions, replicationFactor: spec.replicationFactor, config: spec.config };
        const { errors, notes } = compareTopic(spec, actual);
        if (errors.length > 0) throw new TopicMismatchError(spec.name, errors);
        ensured.push({
          name: spec.name,
          action: existed ? 'verified' : 'created',
          partitions,
          replicationFactor: spec.replicationFactor,
          notes,
        });
      }
      return ensured;
    },
    records: (topic) => topics.records(topic),
    committed: (groupId) => groups.get(groupId)?.offsets() ?? [],
  };
}
