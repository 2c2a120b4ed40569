import { createMemoryBroker } from '@eventual/consumer/memory';
import { InvalidOptionError } from '@eventual/core';
import { createTopics, randomTopic, testServices } from '@eventual/devstack/testing';
import knexFactory, { type Knex } from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { createService, ensureKafkaTopics, kafkaTransport, TopicMismatchError } from '../src/index.js';

const services = testServices();
const kafka = services.kafka('topics-test');
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

async function database(): Promise<Knex> {
  const knex = knexFactory({ client: 'pg', connection: await services.createDatabase('topics'), pool: { max: 20 } });
  cleanups.push(() => knex.destroy());
  return knex;
}

/** What the broker itself says about a topic: partitions, replicas, and the named configs. */
async function describeTopic(topic: string, configNames: string[] = []) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    const configs =
      configNames.length === 0
        ? {}
        : Object.fromEntries(
            (
              await admin.describeConfigs({
                includeSynonyms: false,
                resources: [{ type: 2, name: topic, configNames }],
              })
            ).resources[0]!.configEntries.map((e) => [e.configName, e.configValue]),
          );
    return { partitions: topics[0]!.partitions.length, configs };
  } finally {
    await admin.disconnect();
  }
}

describe('ensureKafkaTopics', () => {
  it('creates what is missing as declared and verifies what exists', async () => {
    const fresh = randomTopic('fresh');
    const existing = randomTopic('existing');
    await createTopics(services.kafkaBrokers, [existing], 4);
    const ensured = await ensureKafkaTopics(kafka, [
      {
        name: fresh,
        partitions: 3,
        minInsyncReplicas: 1,
        retentionMs: 3_600_000,
        config: { 'cleanup.policy': 'delete' },
      },
      { name: existing, partitions: 2 },
    ]);
    expect(ensured).toEqual([
      { name: fresh, action: 'created', partitions: 3, replicationFactor: 1, notes: [] },
      {
        name: existing,
        action: 'verified',
        partitions: 4,
        replicationFactor: 1,
        notes: ['4 partitions, more than the 2 declared'],
      },
    ]);
    expect(await describeTopic(fresh, ['retention.ms', 'min.insync.replicas', 'cleanup.policy'])).toEqual({
      partitions: 3,
      configs: { 'retention.ms': '3600000', 'min.insync.replicas': '1', 'cleanup.policy': 'delete' },
    });
    // Running it again changes nothing: everything is verified.
    const again = await ensureKafkaTopics(kafka, [{ name: fresh, partitions: 3, retentionMs: 3_600_000 }]);
    expect(again.map((t) => t.action)).toEqual(['verified']);
  });

  it('refuses a topic with fewer partitions than declared, explaining key ordering', async () => {
    const topic = randomTopic('too-few');
    await createTopics(services.kafkaBrokers, [topic], 1);
    const error = await ensureKafkaTopics(kafka, [{ name: topic, partitions: 6 }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TopicMismatchError);
    expect((error as TopicMismatchError).topic).toBe(topic);
    expect((error as TopicMismatchError).message).toMatch(/1 partition\(s\), declared 6.*per-key order/);
    expect((await describeTopic(topic)).partitions).toBe(1); // not changed behind the user's back
  });

  it('refuses fewer replicas than declared and notes a different retention', async () => {
    const topic = randomTopic('configs');
    await createTopics(services.kafkaBrokers, [topic], 1, [{ name: 'retention.ms', value: '60000' }]);
    const noted = await ensureKafkaTopics(kafka, [{ name: topic, partitions: 1, retentionMs: 120_000 }]);
    expect(noted[0]!.notes).toEqual(['retention.ms is 60000, declared 120000 (left as it is)']);
    // One broker: a lower min.insync.replicas cannot be made here; compareTopic's unit test covers it.
    await expect(ensureKafkaTopics(kafka, [{ name: topic, partitions: 1, replicationFactor: 2 }])).rejects.toThrow(
      /replication factor 1, declared 2/,
    );
  });

  it('reports what the broker refuses to create, naming the topic', async () => {
    const topic = randomTopic('three-copies');
    await expect(ensureKafkaTopics(kafka, [{ name: topic, partitions: 1, replicationFactor: 3 }])).rejects.toThrow(
      new RegExp(`could not create ${topic}: .*REPLICATION`),
    );
  });

  it('rejects bad declarations with a typed error', async () => {
    await expect(ensureKafkaTopics(kafka, [{ name: 'bad topic', partitions: 1 }])).rejects.toThrow(InvalidOptionError);
    await expect(ensureKafkaTopics(kafka, [{ name: 'ok', partitions: 0 }])).rejects.toThrow(/partitions must be/);
    await expect(
      ensureKafkaTopics(kafka, [{ name: 'ok', partitions: 1, minInsyncReplicas: 2, replicationFactor: 1 }]),
    ).rejects.toThrow(/minInsyncReplicas must be an integer between 1 and 1/);
  });
});

describe('createService({ topics })', () => {
  it('ensures the declared topics at start, before its consumers check them, and messages flow', async () => {
    const topic = randomTopic('declared');
    const knex = await database();
    await knex.schema.createTable('seen', (t) => t.text('message_id').primary());
    const service = createService({
      name: `declared-${topic.slice(-6)}`,
      knex,
      transport: kafkaTransport(kafka, {
        consumer: { sessionTimeout: 6_000, heartbeatInterval: 300, maxWaitTimeInMs: 100 },
      }),
      topics: [{ name: topic, partitions: 3 }],
      consumers: [
        {
          topics: [topic],
          handlers: { Seen: async ({ trx, message }) => trx('seen').insert({ message_id: message.id }) },
        },
      ],
    });
    cleanups.push(() => service.stop());
    await service.start();
    expect((await describeTopic(topic)).partitions).toBe(3);
    const [sent] = await knex.transaction((trx) =>
      service.outbox.enqueue(trx, [{ topic, key: 'k', type: 'Seen', payload: {} }]),
    );
    await expect
      .poll(async () => (await knex('seen').select('message_id')).map((r) => r.message_id), { timeout: 30_000 })
      .toEqual([sent!.id]);
    expect((await service.outbox.stats()).dead).toBe(0);
  });

  it('works the same on the in-memory broker', async () => {
    const broker = createMemoryBroker();
    const topic = randomTopic('memory');
    broker.createTopic(topic, { partitions: 1 });
    await expect(broker.ensureTopics([{ name: topic, partitions: 2 }])).rejects.toThrow(TopicMismatchError);
    const ensured = await broker.ensureTopics([
      { name: `${topic}-b`, partitions: 4 },
      { name: topic, partitions: 1 },
    ]);
    expect(ensured.map((t) => [t.action, t.partitions])).toEqual([
      ['created', 4],
      ['verified', 1],
    ]);
  });

  it('needs a transport that can ensure topics', async () => {
    const knex = await database();
    const broker = createMemoryBroker();
    expect(() =>
      createService({
        name: 'no-ensure',
        knex,
        transport: { publisher: () => broker.publisher(), subscriber: (o) => broker.subscriber(o) },
        topics: [{ name: 'x', partitions: 1 }],
      }),
    ).toThrow(/topics needs a transport with ensureTopics/);
  });
});
