import { createConsumer, createKafkaSubscriber, type Subscriber } from '@eventual/consumer';
import { createOutbox, InvalidOptionError } from '@eventual/outbox';
import { Kafka } from 'kafkajs';
import knexFactory from 'knex';
import { afterAll, describe, expect, it } from 'vitest';

// No services needed: options are checked before anything connects.
const knex = knexFactory({ client: 'pg', connection: 'postgres://nobody@127.0.0.1:1/none' });
afterAll(() => knex.destroy());
const outbox = createOutbox({ knex });
const subscriber: Subscriber = { subscribe: async () => {}, close: async () => {} };
const valid = { outbox, name: 'billing', topics: ['orders'], subscriber };

describe('consumer options', () => {
  it.each([
    [{ ...valid, topics: [] }, /topics must be a non-empty array/],
    [{ ...valid, topics: ['has space'] }, /topics\[0\] must be a legal Kafka topic name/],
    [{ ...valid, maxAttempts: 0 }, /maxAttempts must be an integer between 1 and 1000, got 0/],
    [{ ...valid, batchSize: 0 }, /batchSize must be an integer between 1 and 10000, got 0/],
    [{ ...valid, table: 'Inbox;drop' }, /table must be a lower-case SQL identifier/],
    [{ ...valid, onUnknownType: 'skip' }, /onUnknownType must be one of 'dead-letter', 'ignore', got "skip"/],
    [{ ...valid, unknownTypeGraceMs: -1 }, /unknownTypeGraceMs must be an integer between 0 and 86400000, got -1/],
    [
      { ...valid, unknownTypeGraceMs: '60s' },
      /unknownTypeGraceMs must be an integer between 0 and 86400000, got "60s"/,
    ],
    [
      { ...valid, deadLetterTopic: () => 'orders' },
      /deadLetterTopic\('orders'\) is 'orders', a topic this consumer reads/,
    ],
    [
      { ...valid, backoff: { initialMs: 500, maxMs: 100 } },
      /backoff.maxMs \(100\) must be >= backoff.initialMs \(500\)/,
    ],
    [{ ...valid, retention: { schedule: 'often' } }, /retention.schedule must be a node-cron expression/],
    [{ ...valid, maxAttemps: 3 }, /createConsumer has no option 'maxAttemps'/],
    [{ ...valid, subscriber: {} }, /subscriber must implement \{ subscribe\(topics, handlers\), close\(\) \}/],
  ])('rejects %j with a message that says what to change', (options, message) => {
    expect(() => createConsumer(options as never)).toThrow(InvalidOptionError);
    expect(() => createConsumer(options as never)).toThrow(message);
  });

  it('rejects a second handler for the same type and a bad Kafka subscriber configuration', () => {
    const consumer = createConsumer(valid);
    consumer.handle('OrderPlaced', () => {});
    expect(() => consumer.handle('OrderPlaced', () => {})).toThrow("a handler for 'OrderPlaced' is already registered");
    const kafka = new Kafka({ brokers: ['127.0.0.1:1'] });
    expect(() => createKafkaSubscriber({ kafka, groupId: '' })).toThrow(/groupId must be a non-empty string/);
    expect(() => createKafkaSubscriber({ kafka, groupId: 'g', partitionsConcurrently: 0 })).toThrow(
      /partitionsConcurrently must be an integer between 1 and 1000/,
    );
  });

  it('refuses to start without a handler, naming the consumer and the fix, and stays startable', async () => {
    const joined: string[][] = [];
    const recording: Subscriber = { subscribe: async (topics) => void joined.push(topics), close: async () => {} };
    const consumer = createConsumer({ ...valid, subscriber: recording });
    const error = await consumer.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as Error).message).toMatch(
      /^consumer 'billing' has no handlers: register one per message type it reads with consumer.handle\(type, handler\) before start\(\)/,
    );
    expect(consumer.state).toBe('idle');
    expect(joined).toEqual([]); // refused before it joined the group or touched the database
    const unregister = consumer.handle('OrderPlaced', () => {});
    unregister();
    await expect(consumer.start()).rejects.toThrow(/has no handlers/); // unregistered again: none
  });
});
