import type { ProducerConfig } from 'kafkajs';

/**
 * The producer settings of `createKafkaPublisher` (packages/outbox/src/kafka-publisher.ts):
 * not idempotent, one request in flight, acks from all in-sync replicas (acks -1 is passed
 * per send), and its retry policy. Baselines use exactly these, and the relay gets the
 * retry policy passed explicitly, so both sides of every ratio use one configuration.
 */
export const PRODUCER_RETRY = { retries: 3, initialRetryTime: 100, maxRetryTime: 2_000 } as const;

export const BASELINE_PRODUCER: ProducerConfig = {
  retry: { ...PRODUCER_RETRY },
  idempotent: false,
  maxInFlightRequests: 1,
};

export const ACKS_ALL = -1;
