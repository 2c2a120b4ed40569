import { randomUUID } from 'node:crypto';
import type { Consumer, ConsumerEventMap } from '@eventual/consumer';
import { createMemoryBroker } from '@eventual/consumer/memory';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture, inboxRows, uniqueName } from './support.js';

// A record whose type has no handler yet is held for unknownTypeGraceMs after the
// consumer's start, instead of being dead-lettered for good at once.
const fixture = consumerFixture('hold');
const brokers = fixture.services.kafkaBrokers;
const wait = { timeout: 20_000 };

/** Every event of these kinds, in order, as `kind messageId`, plus the held events themselves. */
function record(consumer: Consumer) {
  const log: string[] = [];
  const held: Array<ConsumerEventMap['consumer:held']> = [];
  consumer.on('consumer:held', (e) => {
    held.push(e);
    log.push(`held ${e.messageId}`);
  });
  consumer.on('consumer:processed', (e) => log.push(`processed ${e.message.id}`));
  consumer.on('consumer:deadLettered', (e) => log.push(`deadLettered ${e.messageId} ${e.reason}`));
  consumer.on('consumer:ignored', (e) => log.push(`ignored ${e.messageId}`));
  return { log, held };
}

/** Dead letters written to the outbox for `topic`, whatever the relay did with them. */
async function deadLetters(knex: Knex, topic: string) {
  return knex('eventual.outbox')
    .where({ topic: `${topic}.dlq` })
    .select('headers');
}

describe('a record whose type has no handler yet', () => {
  it.each([1, 10])(
    'is held until its handler is registered, then applied once, never dead-lettered (batchSize %i)',
    async (batchSize) => {
      const { knex, outbox } = await fixture.service();
      const topic = randomTopic('orders');
      await createTopics(brokers, [topic], 1);
      const consumer = await fixture.consumer({ outbox, name: uniqueName('orders'), topics: [topic], batchSize });
      consumer.handle('OrderPlaced', ({ trx, message }) => apply(trx, message));
      const seen = record(consumer);
      const ids = await fixture.produce(topic, [
        { key: 'o-1', type: 'OrderShipped', payload: { n: 0 } },
        { key: 'o-1', type: 'OrderShipped', payload: { n: 1 } },
        { key: 'o-1', type: 'OrderPlaced', payload: { n: 2 } },
        { key: 'o-1', type: 'OrderShipped', payload: { n: 3 } },
      ]);
      await consumer.start();

      await expect.poll(() => seen.held.length, wait).toBe(1);
      expect(seen.held[0]).toMatchObject({ topic, partition: 0, offset: '0', messageId: ids[0], type: 'OrderShipped' });
      expect(seen.held[0]!.until.getTime()).toBeGreaterThan(Date.now());
      // Held: the partition waits and nothing is written, not even the inbox row.
      expect(await inboxRows(knex, consumer)).toEqual([]);
      expect(consumer.counters).toMatchObject({ processed: 0, deadLettered: 0, held: 1 });

      // Registered after start, as happens: the held record goes on at once.
      consumer.handle('OrderShipped', ({ trx, message }) => apply(trx, message));
      await expect.poll(() => consumer.counters.processed, wait).toBe(4);
      expect(await appliedTimes(knex)).toEqual(Object.fromEntries([...ids].sort().map((id) => [id, 1])));
      expect((await inboxRows(knex, consumer)).map((r) => [r.message_id, r.state, r.attempts])).toEqual(
        ids.map((id) => [id, 'processed', 1]),
      );
      expect(await deadLetters(knex, topic)).toEqual([]);
      expect(seen.log).toEqual([`held ${ids[0]}`, ...ids.map((id) => `processed ${id}`)]);
      expect(consumer.counters).toMatchObject({ processed: 4, deadLettered: 0, held: 1, retried: 0, errors: 0 });
    },
  );

  it('is dead-lettered once the grace is over, and the records behind it then flow', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('orders');
    await createTopics(brokers, [topic], 1);
    const consumer = await fixture.consumer({
      outbox,
      name: uniqueName('orders'),
      topics: [topic],
      unknownTypeGraceMs: 1_500,
    });
    consumer.handle('OrderPlaced', ({ trx, message }) => apply(trx, message));
    const seen = record(consumer);
    await consumer.start();
    const [shipped, ...placed] = await fixture.produce(topic, [
      { key: 'o-1', type: 'OrderShipped', payload: {} },
      { key: 'o-1', type: 'OrderPlaced', payload: {} },
      { key: 'o-1', type: 'OrderPlaced', payload: {} },
    ]);

    await expect.poll(() => consumer.counters.processed, wait).toBe(2);
    expect(seen.log).toEqual([
      `held ${shipped}`,
      `deadLettered ${shipped} unknown-type`,
      ...placed.map((id) => `processed ${id}`),
    ]);
    // After the grace, an unknown type is decided at once: no second hold.
    const [late] = await fixture.produce(topic, [{ key: 'o-1', type: 'OrderShipped', payload: {} }]);
    await expect.poll(() => consumer.counters.deadLettered, wait).toBe(2);
    expect(seen.held).toHaveLength(1);

    expect((await inboxRows(knex, consumer)).map((r) => [r.message_id, r.state, r.attempts])).toEqual([
      [shipped, 'dead', 0],
      ...placed.map((id) => [id, 'processed', 1]),
      [late, 'dead', 0],
    ]);
    const letters = await deadLetters(knex, topic);
    expect(letters.map((l) => [l.headers['dlq-original-message-id'], l.headers['dlq-reason']])).toEqual([
      [shipped, 'unknown-type'],
      [late, 'unknown-type'],
    ]);
    expect(letters[0].headers['dlq-error']).toMatch(
      /^no handler is registered for message type 'OrderShipped' on consumer '.*', which has run longer than unknownTypeGraceMs \(1500 ms\)/,
    );
    expect(await appliedTimes(knex)).toEqual(Object.fromEntries([...placed].sort().map((id) => [id, 1])));
  });

  it('is skipped once the grace is over with onUnknownType: ignore, leaving no inbox row', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('orders');
    await createTopics(brokers, [topic], 1);
    const consumer = await fixture.consumer({
      outbox,
      name: uniqueName('orders'),
      topics: [topic],
      unknownTypeGraceMs: 1_000,
      onUnknownType: 'ignore',
    });
    consumer.handle('OrderPlaced', ({ trx, message }) => apply(trx, message));
    const seen = record(consumer);
    await consumer.start();
    const [shipped, placed] = await fixture.produce(topic, [
      { key: 'o-1', type: 'OrderShipped', payload: {} },
      { key: 'o-1', type: 'OrderPlaced', payload: {} },
    ]);
    await expect.poll(() => consumer.counters.processed, wait).toBe(1);
    expect(seen.log).toEqual([`held ${shipped}`, `ignored ${shipped}`, `processed ${placed}`]);
    expect((await inboxRows(knex, consumer)).map((r) => r.message_id)).toEqual([placed]);
    expect(await deadLetters(knex, topic)).toEqual([]);
  });

  it('is left uncommitted by a stop during the hold, and applied by the next instance that has the handler', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('orders');
    await createTopics(brokers, [topic], 1);
    const name = uniqueName('orders');
    // Ten minutes: a stop() that waited for the grace would time the test out.
    const old = await fixture.consumer({ outbox, name, topics: [topic], unknownTypeGraceMs: 600_000 });
    old.handle('OrderPlaced', ({ trx, message }) => apply(trx, message));
    const seen = record(old);
    await old.start();
    const [shipped] = await fixture.produce(topic, [{ key: 'o-1', type: 'OrderShipped', payload: {} }]);
    await expect.poll(() => seen.held.length, wait).toBe(1);

    await old.stop();
    expect(await fixture.group(name, topic)).toEqual({ offset: '-1', state: 'Empty' });
    expect(await inboxRows(knex, old)).toEqual([]);

    // A rolling deploy: the new code knows the type.
    const next = await fixture.consumer({ outbox, name, topics: [topic], unknownTypeGraceMs: 600_000 });
    next.handle('OrderPlaced', ({ trx, message }) => apply(trx, message));
    next.handle('OrderShipped', ({ trx, message }) => apply(trx, message, 'next'));
    await next.start();
    await expect.poll(() => next.counters.processed, wait).toBe(1);
    expect(await appliedTimes(knex)).toEqual({ [shipped!]: 1 });
    expect(await knex('applied').where({ message_id: shipped }).first()).toMatchObject({ applied_by: 'next' });
    expect(await inboxRows(knex, next)).toEqual([expect.objectContaining({ message_id: shipped, state: 'processed' })]);
    expect(next.counters).toMatchObject({ held: 0, deadLettered: 0 });
    await next.stop();
    expect(await fixture.group(name, topic)).toEqual({ offset: '1', state: 'Empty' });
  });

  it('is held the same way with the in-memory transport, and a stop leaves it uncommitted', async () => {
    const broker = createMemoryBroker();
    await broker.ensureTopics([{ name: 'orders', partitions: 1 }]);
    const { knex, outbox } = await fixture.service();
    const first = await fixture.consumer({
      outbox,
      name: 'shipping',
      topics: ['orders'],
      subscriber: broker.subscriber({ groupId: 'shipping' }),
    });
    first.handle('OrderPlaced', ({ trx, message }) => apply(trx, message));
    const seen = record(first);
    await first.start();
    const id = randomUUID();
    const value = JSON.stringify({});
    await broker
      .publisher()
      .publish([
        { id, topic: 'orders', key: 'o-1', value, headers: { [HEADER.id]: id, [HEADER.type]: 'OrderShipped' } },
      ]);
    await expect.poll(() => seen.held.length, wait).toBe(1);
    await first.stop();
    expect(broker.committed('shipping')).toEqual([]);

    const second = await fixture.consumer({
      outbox,
      name: 'shipping',
      topics: ['orders'],
      subscriber: broker.subscriber({ groupId: 'shipping' }),
    });
    second.handle('OrderPlaced', ({ trx, message }) => apply(trx, message));
    const again = record(second);
    await second.start();
    await expect.poll(() => again.held.length, wait).toBe(1);
    second.handle('OrderShipped', ({ trx, message }) => apply(trx, message));
    await expect.poll(() => second.counters.processed, wait).toBe(1);
    expect(await appliedTimes(knex)).toEqual({ [id]: 1 });
    await second.stop();
    expect(broker.committed('shipping')).toEqual([{ topic: 'orders', partition: 0, offset: '1' }]);
  });
});
