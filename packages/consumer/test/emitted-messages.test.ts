import { NonRetriableError } from '@eventual/consumer';
import { createTopics, randomTopic, readTopics } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { consumerFixture, uniqueName } from './support.js';

const fixture = consumerFixture('emitted');
const brokers = fixture.services.kafkaBrokers;

describe('messages a handler emits', () => {
  it('are published if and only if the handler transaction committed', async () => {
    const { knex, outbox } = await fixture.service();
    const orders = randomTopic('orders');
    const payments = randomTopic('payments');
    await createTopics(brokers, [orders, `${orders}.dlq`, payments], 1);
    const consumer = await fixture.consumer({ outbox, name: uniqueName('payment-service'), topics: [orders] });
    consumer.handle<{ orderId: string; outcome: 'commit' | 'fail-once' | 'reject' }>(
      'OrderPlaced',
      async ({ message, outbox: bound, attempt }) => {
        const { orderId, outcome } = message.payload;
        await bound.enqueue({ topic: payments, key: orderId, type: 'PaymentRequested', payload: { orderId, attempt } });
        if (outcome === 'fail-once' && attempt === 1) throw new Error('lock timeout');
        if (outcome === 'reject') throw new NonRetriableError('order total is negative');
      },
    );
    const reader = await readTopics(brokers, [payments]);
    fixture.defer(() => reader.stop());
    fixture.relay(outbox).start();
    await consumer.start();

    const [committed, retried] = await fixture.produce(orders, [
      { key: 'o-1', type: 'OrderPlaced', payload: { orderId: 'o-1', outcome: 'commit' }, correlationId: 'checkout-77' },
      { key: 'o-2', type: 'OrderPlaced', payload: { orderId: 'o-2', outcome: 'fail-once' } },
      { key: 'o-3', type: 'OrderPlaced', payload: { orderId: 'o-3', outcome: 'reject' } },
    ]);
    await expect.poll(() => consumer.counters, { timeout: 20_000 }).toMatchObject({ processed: 2, deadLettered: 1 });

    // Only committed transactions left rows in the outbox...
    const rows = await knex('eventual.outbox').where({ topic: payments }).orderBy('id').select('payload');
    expect(rows.map((r) => r.payload)).toEqual([
      { orderId: 'o-1', attempt: 1 },
      { orderId: 'o-2', attempt: 2 },
    ]);
    // ...and Kafka has exactly those: once everything pending is published, a sentinel
    // published after them proves nothing else reached the (single-partition) topic.
    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 20_000 }).toBe(0);
    const [sentinel] = await knex.transaction((trx) =>
      outbox.enqueue(trx, [{ topic: payments, key: 'sentinel', type: 'Sentinel', payload: {} }]),
    );
    const all = await reader.waitFor('the sentinel', (r) => r.some((x) => x.headers[HEADER.id] === sentinel!.id));
    // Order holds per key only: o-1 and o-2 may be relayed by different lanes.
    const published = all
      .filter((r) => r.headers[HEADER.id] !== sentinel!.id)
      .sort((a, b) => a.key!.localeCompare(b.key!));
    expect(published.map((r) => JSON.parse(r.value!))).toEqual([
      { orderId: 'o-1', attempt: 1 },
      { orderId: 'o-2', attempt: 2 },
    ]);
    // Emitted messages continue the conversation: same correlation id, caused by the incoming message.
    expect(published[0]!.headers).toMatchObject({
      [HEADER.correlationId]: 'checkout-77',
      [HEADER.causationId]: committed,
    });
    expect(published[1]!.headers).toMatchObject({ [HEADER.correlationId]: retried, [HEADER.causationId]: retried });
  });
});
