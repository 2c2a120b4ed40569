import { randomUUID } from 'node:crypto';
import { type Consumer, type ConsumerOptions, createConsumer, createKafkaSubscriber } from '@eventual/consumer';
import { testServices } from '@eventual/devstack/testing';
import {
  createKafkaPublisher,
  createOutbox,
  createRelay,
  HEADER,
  type Message,
  type Outbox,
  type RelayOptions,
} from '@eventual/outbox';
import type { ConsumerConfig, Message as KafkaRecord, Producer } from 'kafkajs';
import knexFactory, { type Knex } from 'knex';
import { afterAll } from 'vitest';

/** kafkajs settings that make group joins and rebalances take a second, not half a minute. */
export const FAST_GROUP: Omit<ConsumerConfig, 'groupId'> = {
  sessionTimeout: 6_000,
  rebalanceTimeout: 10_000,
  heartbeatInterval: 300,
  maxWaitTimeInMs: 100,
};

export interface TestMessage {
  id?: string;
  key: string;
  type: string;
  payload: unknown;
  correlationId?: string;
  headers?: Record<string, string>;
}

/**
 * Per test file: fresh databases (one per consuming service, with its outbox and inbox
 * migrated and a `applied` table that counts how often each message id was applied),
 * and cleanup of every consumer, relay, producer and knex pool the file created, in
 * reverse order.
 */
export function consumerFixture(prefix: string) {
  const services = testServices();
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });
  const defer = (cleanup: () => Promise<unknown>) => cleanups.push(cleanup);
  let producer: Promise<Producer> | undefined;

  const connect = (url: string, pool = 10): Knex => {
    const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: pool } });
    defer(() => knex.destroy());
    return knex;
  };

  return {
    services,
    connect,
    defer,
    /** A consuming service's database: outbox (for dead letters and emitted messages) and the `applied` table. */
    async service(): Promise<{ url: string; knex: Knex; outbox: Outbox }> {
      const url = await services.createDatabase(prefix);
      const knex = connect(url);
      const outbox = createOutbox({ knex });
      await outbox.migrate({ shards: 4 });
      await knex.schema.createTable('applied', (t) => {
        t.text('message_id').primary();
        t.integer('times').notNullable();
        t.text('applied_by');
      });
      return { url, knex, outbox };
    },
    subscriber(groupId: string, partitionsConcurrently = 4) {
      return createKafkaSubscriber({
        kafka: services.kafka(groupId),
        groupId,
        partitionsConcurrently,
        consumer: FAST_GROUP,
      });
    },
    /** A consumer with fast retries and no scheduled cleanup; migrated, stopped after the file. */
    async consumer(options: Omit<ConsumerOptions, 'subscriber'> & { subscriber?: ConsumerOptions['subscriber'] }) {
      const consumer = createConsumer({
        backoff: { initialMs: 20, maxMs: 100 },
        retention: { schedule: false },
        ...options,
        subscriber: options.subscriber ?? this.subscriber(options.name),
      });
      defer(() => consumer.stop());
      await consumer.migrate();
      return consumer;
    },
    relay(outbox: Outbox, options: Partial<RelayOptions> = {}) {
      const publisher = options.publisher ?? createKafkaPublisher({ kafka: services.kafka('relay') });
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
    /** Produces records exactly as the outbox relay does: key, JSON value, the four standard headers. */
    async produce(topic: string, messages: TestMessage[]): Promise<string[]> {
      const ids = messages.map((m) => m.id ?? randomUUID());
      await this.produceRaw(
        topic,
        messages.map((m, i) => ({
          key: m.key,
          value: JSON.stringify(m.payload),
          headers: {
            ...m.headers,
            [HEADER.id]: ids[i]!,
            [HEADER.type]: m.type,
            [HEADER.correlationId]: m.correlationId ?? ids[i]!,
            [HEADER.causationId]: ids[i]!,
          },
        })),
      );
      return ids;
    },
    /** A group's committed offset on partition 0 of `topic` (`-1`: none) and its state. */
    async group(groupId: string, topic: string) {
      const admin = services.kafka('admin').admin();
      await admin.connect();
      try {
        const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
        const { groups } = await admin.describeGroups([groupId]);
        return { offset: offsets?.partitions.find((p) => p.partition === 0)?.offset, state: groups[0]?.state };
      } finally {
        await admin.disconnect();
      }
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

/** The business effect the tests count: one row per message id, `times` = how often it was applied. */
export async function apply(trx: Knex.Transaction, message: Message<unknown>, by = 'handler'): Promise<void> {
  await trx.raw(
    `insert into applied (message_id, times, applied_by) values (?, 1, ?)
     on conflict (message_id) do update set times = applied.times + 1`,
    [message.id, by],
  );
}

/** message id -> times applied. */
export async function appliedTimes(knex: Knex): Promise<Record<string, number>> {
  const rows = await knex('applied').select('message_id', 'times').orderBy('message_id');
  return Object.fromEntries(rows.map((r: { message_id: string; times: number }) => [r.message_id, r.times]));
}

export async function inboxRows(knex: Knex, consumer: Consumer) {
  return knex(`${consumer.options.schema}.${consumer.options.table}`)
    .where({ consumer: consumer.name })
    .select('message_id', 'state', 'attempts', 'error', 'topic', 'partition', 'offset')
    .orderBy('offset');
}

export const uniqueName = (what: string) => `${what}-${randomUUID().slice(0, 8)}`;

/** A promise the test resolves by hand: holds a handler inside its transaction. */
export function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}
