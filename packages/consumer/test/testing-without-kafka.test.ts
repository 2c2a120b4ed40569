import { createMemoryBroker } from '@eventual/consumer/memory';
import { HEADER } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture } from './support.js';

// The README's "Testing your handlers without Kafka", as a test: a real consumer,
// real relays and real PostgreSQL outboxes and inbox; only Kafka is replaced.
const fixture = consumerFixture('memory_e2e');
const wait = { timeout: 15_000, interval: 20 };

describe('a service tested with the in-memory broker', () => {
  it('applies a message once, even when it is published twice, and publishes what its handler emits', async () => {
    const broker = createMemoryBroker();
    // As on Kafka, a consumer only starts on topics that exist.
    await broker.ensureTopics([{ name: 'orders', partitions: 1 }]);
    const orders = await fixture.service(); // the upstream service, producing OrderPlaced
    const payments = await fixture.service(); // the service under test

    const consumer = await fixture.consumer({
      outbox: payments.outbox,
      name: 'payments',
      topics: ['orders'],
      subscriber: broker.subscriber({ groupId: 'payments' }),
    });
    consumer.handle<{ orderId: string; total: number }>('OrderPlaced', async ({ trx, message, outbox }) => {
      await apply(trx, message);
      await outbox.enqueue({
        topic: 'payments',
        key: message.payload.orderId,
        type: 'PaymentRequested',
        payload: { orderId: message.payload.orderId, amount: message.payload.total },
      });
    });
    fixture.relay(orders.outbox, { publisher: broker.publisher() }).start();
    fixture.relay(payments.outbox, { publisher: broker.publisher() }).start();
    await consumer.start();

    const [placed] = await orders.knex.transaction((trx) =>
      orders.outbox.enqueue(trx, [
        { topic: 'orders', key: 'o-1', type: 'OrderPlaced', payload: { orderId: 'o-1', total: 30 } },
      ]),
    );
    await expect.poll(() => broker.records('payments').length, wait).toBe(1);

    // A relay that crashed between the broker's acknowledgement and its mark publishes again.
    const [original] = broker.records('orders');
    const { topic, key, value, headers } = original!;
    await broker.publisher().publish([{ id: placed!.id, topic, key, value, headers }]);
    await expect.poll(() => consumer.counters.duplicates, wait).toBe(1);

    expect(await appliedTimes(payments.knex)).toEqual({ [placed!.id]: 1 });
    expect(consumer.counters).toMatchObject({ processed: 1, duplicates: 1, deadLettered: 0 });
    const [emitted] = broker.records('payments');
    expect(JSON.parse(emitted!.value)).toEqual({ orderId: 'o-1', amount: 30 });
    expect(emitted!.key).toBe('o-1');
    expect(emitted!.headers).toMatchObject({
      [HEADER.type]: 'PaymentRequested',
      [HEADER.correlationId]: placed!.id,
      [HEADER.causationId]: placed!.id,
    });
    expect(broker.records('payments')).toHaveLength(1);
    expect(broker.committed('payments')).toEqual([{ topic: 'orders', partition: 0, offset: '2' }]);
  });
});
