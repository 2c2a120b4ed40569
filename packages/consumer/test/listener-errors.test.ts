import type { LogEntry } from '@eventual/core';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture, uniqueName } from './support.js';

const fixture = consumerFixture('listeners');
const brokers = fixture.services.kafkaBrokers;

describe('event listeners', () => {
  it("report a listener that throws once, through the consumer's logger, and never disturb consuming", async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('orders');
    await createTopics(brokers, [topic, `${topic}.dlq`], 1);
    const logged: LogEntry[] = [];
    const consumer = await fixture.consumer({
      outbox,
      name: uniqueName('orders'),
      topics: [topic],
      logger: (entry) => logged.push(entry),
    });
    consumer.handle('OrderPlaced', ({ trx, message }) => apply(trx, message));
    consumer.on('consumer:processed', () => {
      throw new Error('a bug in the listener');
    });
    await consumer.start();

    const ids = await fixture.produce(topic, [
      { key: 'o-1', type: 'OrderPlaced', payload: {} },
      { key: 'o-2', type: 'OrderPlaced', payload: {} },
    ]);
    await expect.poll(() => consumer.counters.processed, { timeout: 20_000 }).toBe(2);

    expect(await appliedTimes(knex)).toEqual(Object.fromEntries(ids.sort().map((id) => [id, 1])));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 'error', namespace: 'consumer', event: 'consumer:processed' });
    expect(logged[0]!.error?.message).toBe('a bug in the listener');
  });
});
