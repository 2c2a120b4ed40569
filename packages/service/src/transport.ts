import { createKafkaSubscriber, type KafkaSubscriberOptions, type Subscriber } from '@eventual/consumer';
import { type EnsuredTopic, integer, knownKeys, type TopicSpec } from '@eventual/core';
import { createKafkaPublisher, ensureKafkaTopics, type KafkaPublisherOptions, type Publisher } from '@eventual/outbox';
import type { Kafka } from 'kafkajs';

/**
 * Where a service's messages go and come from: a publisher for its relay and a
 * subscriber per consumer group. `kafkaTransport(kafka)` is the kafkajs one; the
 * in-memory broker of `@eventual/consumer/memory` has the same shape, for unit tests.
 */
export interface Transport {
  /** A new publisher, for the service's relay (which owns it and closes it on stop). */
  publisher(): Publisher;
  /** A new subscriber, one member of consumer group `groupId`, for one consumer (which closes it on stop). */
  subscriber(options: { groupId: string }): Subscriber;
  /**
   * Partitions one subscriber handles at the same time, each holding a database
   * connection for its transaction: the service counts them when it checks its pool.
   * Default 1.
   */
  readonly concurrency?: number;
  /**
   * Creates the declared topics that are missing and verifies those that exist (fewer
   * partitions, replicas or min.insync.replicas than declared is a `TopicMismatchError`).
   * `createService({ topics })` calls it at start, before the relay and consumers.
   */
  ensureTopics?(topics: readonly TopicSpec[], options?: { timeoutMs?: number }): Promise<EnsuredTopic[]>;
}

/** Options of `kafkaTransport`; an unknown key throws `InvalidOptionError`. */
export interface KafkaTransportOptions {
  /** kafkajs producer settings for the relay's publisher (idempotence and acks are fixed). */
  producer?: KafkaPublisherOptions['producer'];
  /** kafkajs consumer settings for every consumer group (sessionTimeout, heartbeatInterval, ...). */
  consumer?: KafkaSubscriberOptions['consumer'];
  /** Partitions handled concurrently per consumer. Default 4. */
  partitionsConcurrently?: number;
  /** Where a group with no committed offset starts. Default true: the earliest record. */
  fromBeginning?: boolean;
}

/** The kafkajs transport: `createKafkaPublisher`'s producer for the relay, a consumer group per consumer. */
export function kafkaTransport(kafka: Kafka, options: KafkaTransportOptions = {}): Transport {
  knownKeys('kafkaTransport', options, ['producer', 'consumer', 'partitionsConcurrently', 'fromBeginning']);
  const concurrency = integer('partitionsConcurrently', options.partitionsConcurrently ?? 4, 1, 1_000);
  return {
    concurrency,
    ensureTopics: (topics, ensureOptions = {}) => ensureKafkaTopics(kafka, topics, ensureOptions),
    publisher: () => createKafkaPublisher({ kafka, ...(options.producer ? { producer: options.producer } : {}) }),
    subscriber: ({ groupId }) =>
      createKafkaSubscriber({
        kafka,
        groupId,
        partitionsConcurrently: concurrency,
        ...(options.fromBeginning === undefined ? {} : { fromBeginning: options.fromBeginning }),
        ...(options.consumer ? { consumer: options.consumer } : {}),
      }),
  };
}
