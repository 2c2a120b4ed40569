import type { ProducerConfig } from 'kafkajs';

/**
 * The producer settings of `createKafkaPublisher` (packages/outbox/src/kafka-publisher.ts):
 * not idempotent, no retry inside kafkajs, one request in flight, acks from all in-sync
 * replicas (acks -1 is passed per send). Baselines use exactly these, so both sides of
 * every ratio use one configuration.
 */
export const BASELINE_PRODUCER: ProducerConfig = {
  retry: { retries: 0 },
  idempotent: false,
  maxInFlightRequests: 1,
};

export const ACKS_ALL = -1;
