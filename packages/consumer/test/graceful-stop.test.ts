import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture, gate, inboxRows, uniqueName } from './support.js';

const fixture = consumerFixture('stop');
const brokers = fixture.services.kafkaBrokers;

const group = (groupId: string, topic: string) => fixture.group(groupId, topic);

describe('stop()', () => {
  it('finishes the record in flight, commits it and its offset, and leaves the group', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('parcels');
    await createTopics(brokers, [topic], 1);
    const name = uniqueName('dispatch');
    const consumer = await fixture.consumer({ outbox, name, topics: [topic] });
    const entered = gate();
    const release = gate();
    consumer.handle('ParcelReady', async ({ trx, message }) => {
      await apply(trx, message);
      entered.open();
      await release.opened;
    });
    await consumer.start();
    const [first, ...rest] = await fixture.produce(
      topic,
      ['p-1', 'p-2', 'p-3'].map((key) => ({ key, type: 'ParcelReady', payload: {} })),
    );
    await entered.opened;

    let stopped = false;
    const stopping = consumer.stop().then(() => {
      stopped = true;
    });
    expect(consumer.state).toBe('stopping');
    await knex.raw('select 1'); // a real round trip: stop() is still waiting for the handler
    expect(stopped).toBe(false);
    release.open();
    await stopping;

    expect(consumer.state).toBe('stopped');
    expect(consumer.counters.processed).toBe(1);
    // The three records were produced in one request, so the fetch saw all of them.
    expect(consumer.lag()).toMatchObject({ total: 2, partitions: [{ topic, partition: 0, lag: 2 }] });
    expect(await appliedTimes(knex)).toEqual({ [first!]: 1 });
    expect(await group(name, topic)).toEqual({ offset: '1', state: 'Empty' });

    // The next instance starts right after the committed record: nothing lost, nothing twice.
    const next = await fixture.consumer({ outbox, name, topics: [topic] });
    next.handle('ParcelReady', ({ trx, message }) => apply(trx, message));
    await next.start();
    await expect.poll(() => next.counters.processed, { timeout: 20_000 }).toBe(2);
    expect(next.counters.duplicates).toBe(0);
    expect(await appliedTimes(knex)).toEqual(Object.fromEntries([first!, ...rest].map((id) => [id, 1])));
  });

  it('does not wait out a retry backoff: the record is left for redelivery with its attempt count', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('labels');
    await createTopics(brokers, [topic], 1);
    const name = uniqueName('labels');
    // A ten-minute backoff: stop() would time the test out if it waited for it.
    const consumer = await fixture.consumer({
      outbox,
      name,
      topics: [topic],
      backoff: { initialMs: 600_000, maxMs: 600_000 },
    });
    consumer.handle('LabelRequested', () => {
      throw new Error('printer offline');
    });
    await consumer.start();
    const [id] = await fixture.produce(topic, [{ key: 'l-1', type: 'LabelRequested', payload: {} }]);
    await expect.poll(() => consumer.counters.retried, { timeout: 20_000 }).toBe(1);

    await consumer.stop();

    expect(await inboxRows(knex, consumer)).toEqual([
      expect.objectContaining({ message_id: id, state: 'retrying', attempts: 1, error: 'Error: printer offline' }),
    ]);
    expect(await group(name, topic)).toEqual({ offset: '-1', state: 'Empty' });
  });
});
