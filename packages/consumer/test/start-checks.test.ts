import { BrokerUnreachableError, createKafkaSubscriber, TopicNotFoundError } from '@eventual/consumer';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { Kafka, logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture, uniqueName } from './support.js';

const fixture = consumerFixture('startchecks');

async function topicsOnBroker(): Promise<string[]> {
  const admin = fixture.services.kafka('list').admin();
  await admin.connect();
  try {
    return await admin.listTopics();
  } finally {
    await admin.disconnect();
  }
}

describe('consumer.start() checks the broker and its topics', () => {
  it('fails naming every missing topic and the fix, without creating them (auto.create.topics.enable is on)', async () => {
    const { outbox } = await fixture.service();
    const present = randomTopic('present');
    const missingA = randomTopic('missing-a');
    const missingB = randomTopic('missing-b');
    await createTopics(fixture.services.kafkaBrokers, [present], 1);
    const name = uniqueName('missing');
    const consumer = await fixture.consumer({ outbox, name, topics: [present, missingA, missingB] });
    consumer.handle('T', async () => {});
    const error = await consumer.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TopicNotFoundError);
    const e = error as TopicNotFoundError;
    expect(e.code).toBe('topic_not_found');
    expect([...e.topics].sort()).toEqual([missingA, missingB].sort());
    expect(e.message).toContain(missingA);
    expect(e.message).toContain(missingB);
    expect(e.message).not.toContain(present);
    expect(e.message).toMatch(/createService\(\{ topics/);
    expect(e.message).toMatch(/kafka-topics\.sh/);
    expect(consumer.state).toBe('stopped');
    // The check asked without creating: the topics still do not exist.
    const onBroker = await topicsOnBroker();
    expect(onBroker).toContain(present);
    expect(onBroker).not.toContain(missingA);
    expect(onBroker).not.toContain(missingB);
  });

  it('starts once the topic exists, and processes its records', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('created-later');
    const name = uniqueName('later');
    const first = await fixture.consumer({ outbox, name, topics: [topic] });
    first.handle('T', async () => {});
    await expect(first.start()).rejects.toBeInstanceOf(TopicNotFoundError);

    await createTopics(fixture.services.kafkaBrokers, [topic], 2);
    const second = await fixture.consumer({ outbox, name, topics: [topic] });
    second.handle('T', async ({ trx, message }) => apply(trx, message));
    await second.start();
    const ids = await fixture.produce(topic, [
      { key: 'a', type: 'T', payload: { n: 1 } },
      { key: 'b', type: 'T', payload: { n: 2 } },
    ]);
    await expect.poll(async () => Object.keys(await appliedTimes(knex)).length, { timeout: 30_000 }).toBe(2);
    expect(await appliedTimes(knex)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    expect(second.counters.deadLettered).toBe(0);
  });

  it('fails with BrokerUnreachableError naming the broker when nothing listens there', async () => {
    const { outbox } = await fixture.service();
    const name = uniqueName('refused');
    const kafka = new Kafka({
      clientId: name,
      brokers: ['127.0.0.1:1'],
      logLevel: logLevel.NOTHING,
      retry: { retries: 1 },
    });
    const consumer = await fixture.consumer({
      outbox,
      name,
      topics: [randomTopic('any')],
      subscriber: createKafkaSubscriber({ kafka, groupId: name }),
      connectTimeoutMs: 10_000,
    });
    consumer.handle('T', async () => {});
    const error = await consumer.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokerUnreachableError);
    expect((error as BrokerUnreachableError).reason).toBe('refused');
    expect((error as BrokerUnreachableError).message).toContain('127.0.0.1:1');
    expect(consumer.state).toBe('stopped');
  });
});
