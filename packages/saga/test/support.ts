import { randomUUID } from 'node:crypto';
import { type ConsumerOptions, createConsumer, createKafkaSubscriber } from '@eventual/consumer';
import { testServices } from '@eventual/devstack/testing';
import { createKafkaPublisher, createOutbox, createRelay, type Outbox, type RelayOptions } from '@eventual/outbox';
import type { Message as KafkaRecord, Producer } from 'kafkajs';
import knexFactory, { type Knex } from 'knex';
import { afterAll } from 'vitest';

/**
 * Per test file: a fresh database per service (outbox migrated), consumers with fast
 * retries and fast group joins, relays, a raw producer, and cleanup of all of them
 * after the file, in reverse order.
 */
export function serviceFixture(prefix: string) {
  const services = testServices();
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });
  const defer = (cleanup: () => Promise<unknown>) => cleanups.push(cleanup);
  let producer: Promise<Producer> | undefined;

  return {
    services,
    defer,
    /** A service's own database with its outbox. */
    async service(): Promise<{ url: string; knex: Knex; outbox: Outbox }> {
      const url = await services.createDatabase(prefix);
      const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 10 } });
      defer(() => knex.destroy());
      const outbox = createOutbox({ knex });
      await outbox.migrate({ shards: 4 });
      return { url, knex, outbox };
    },
    /** A consumer with fast retries and no scheduled cleanup; migrated, stopped after the file. */
    async consumer(options: Omit<ConsumerOptions, 'subscriber'>) {
      const consumer = createConsumer({
        backoff: { initialMs: 20, maxMs: 100 },
        retention: { schedule: false },
        ...options,
        subscriber: createKafkaSubscriber({
          kafka: services.kafka(options.name),
          groupId: options.name,
          partitionsConcurrently: 4,
          // Group joins and rebalances in a second, not half a minute.
          consumer: { sessionTimeout: 6_000, rebalanceTimeout: 10_000, heartbeatInterval: 300, maxWaitTimeInMs: 100 },
        }),
      });
      defer(() => consumer.stop());
      await consumer.migrate();
      return consumer;
    },
    relay(outbox: Outbox, options: Partial<RelayOptions> = {}) {
      const publisher = createKafkaPublisher({ kafka: services.kafka('relay') });
      const relay = createRelay(outbox, {
        pollIntervalMs: 100,
        leaseTtlMs: 3_000,
        backoff: { initialMs: 50, maxMs: 500 },
        ...options,
        publisher,
      });
      defer(async () => {
        await relay.stop();
        await publisher.close();
      });
      return relay;
    },
    async produceRaw(topic: string, records: KafkaRecord[]): Promise<void> {
      producer ??= (async () => {
        const p = services.kafka('test-producer').producer({ idempotent: true, maxInFlightRequests: 1 });
        await p.connect();
        defer(() => p.disconnect());
        return p;
      })();
      await (await producer).send({ topic, messages: records, acks: -1 });
    },
  };
}

export const uniqueName = (what: string) => `${what}-${randomUUID().slice(0, 8)}`;
