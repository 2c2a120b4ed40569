import { randomUUID } from 'node:crypto';
import { waitUntil } from '@eventual/devstack';
import { testServices } from '@eventual/devstack/testing';
import { type EachMessagePayload, Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';

const { kafkaBrokers } = testServices();
const kafka = new Kafka({ clientId: 'smoke', brokers: kafkaBrokers, logLevel: logLevel.ERROR });
const admin = kafka.admin();
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await admin.disconnect();
});

async function newTopic(partitions = 3): Promise<string> {
  const topic = `smoke-${randomUUID()}`;
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  return topic;
}

async function readAll(
  topic: string,
  expected: number,
  isolation: 'read_committed' | 'read_uncommitted' = 'read_committed',
) {
  const consumer = kafka.consumer({
    groupId: `smoke-${randomUUID()}`,
    readUncommitted: isolation === 'read_uncommitted',
  });
  cleanups.push(() => consumer.disconnect());
  const seen: EachMessagePayload[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async (payload) => void seen.push(payload) });
  await waitUntil(`${expected} records on ${topic}`, async () => (seen.length >= expected ? true : undefined), {
    timeoutMs: 30_000,
  });
  return seen;
}

describe('Kafka from the devstack', () => {
  it('creates a topic, produces with the idempotent producer and consumes with a group', async () => {
    const topic = await newTopic();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    const messages = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 5}`, value: JSON.stringify({ i }) }));
    await producer.send({ topic, messages, acks: -1 });

    const seen = await readAll(topic, 30);
    expect(seen).toHaveLength(30);
    // Per-key order: each key's values arrive in the order they were sent.
    const byKey = new Map<string, number[]>();
    for (const { message } of seen) {
      const key = message.key?.toString() ?? '';
      byKey.set(key, [...(byKey.get(key) ?? []), JSON.parse(message.value?.toString() ?? '{}').i]);
    }
    for (const values of byKey.values()) expect(values).toEqual([...values].sort((a, b) => a - b));
  });

  it('shows a committed transaction to read_committed consumers and hides an aborted one', async () => {
    const topic = await newTopic(1);
    const producer = kafka.producer({
      transactionalId: `smoke-${randomUUID()}`,
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    cleanups.push(() => producer.disconnect());

    const aborted = await producer.transaction();
    await aborted.send({ topic, messages: [{ key: 'a', value: 'aborted' }] });
    await aborted.abort();
    const committed = await producer.transaction();
    await committed.send({ topic, messages: [{ key: 'a', value: 'committed' }] });
    await committed.commit();

    const seen = await readAll(topic, 1);
    expect(seen.map(({ message }) => message.value?.toString())).toEqual(['committed']);
  });
});
