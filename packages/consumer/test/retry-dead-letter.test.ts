import { DLQ_HEADER, NonRetriableError } from '@eventual/consumer';
import { createTopics, randomTopic, readTopics } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture, inboxRows, uniqueName } from './support.js';

const fixture = consumerFixture('retry');
const brokers = fixture.services.kafkaBrokers;

describe('retries and dead letters', () => {
  it('applies a message once when its handler fails twice and then succeeds', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('payments');
    await createTopics(brokers, [topic], 1);
    const consumer = await fixture.consumer({ outbox, name: uniqueName('payments'), topics: [topic] });
    consumer.handle('PaymentRequested', async ({ trx, message, attempt }) => {
      await apply(trx, message); // written every time, kept only by the attempt that commits
      if (attempt <= 2) throw new Error(`gateway timeout #${attempt}`);
    });
    const retried: Array<[number, string]> = [];
    consumer.on('consumer:retried', (e) => retried.push([e.attempt, e.error.message]));
    await consumer.start();

    const [id] = await fixture.produce(topic, [{ key: 'p-1', type: 'PaymentRequested', payload: { amount: 10 } }]);

    await expect.poll(() => consumer.counters.processed, { timeout: 20_000 }).toBe(1);
    expect(await appliedTimes(knex)).toEqual({ [id!]: 1 });
    expect(retried).toEqual([
      [1, 'gateway timeout #1'],
      [2, 'gateway timeout #2'],
    ]);
    expect(await inboxRows(knex, consumer)).toEqual([
      expect.objectContaining({ message_id: id, state: 'processed', attempts: 3, error: null }),
    ]);
    expect(consumer.counters).toMatchObject({ processed: 1, retried: 2, deadLettered: 0 });
  });

  it('dead-letters an always-failing message exactly once with its error, and the partition goes on', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('charges');
    const dlq = `${topic}.dlq`;
    await createTopics(brokers, [topic, dlq], 1);
    const consumer = await fixture.consumer({ outbox, name: uniqueName('charges'), topics: [topic], maxAttempts: 3 });
    consumer.handle('ChargeCard', async ({ trx, message }) => {
      await apply(trx, message);
      if ((message.payload as { card: string }).card === 'declined')
        throw new Error('card declined: insufficient funds');
    });
    fixture.relay(outbox).start();
    const reader = await readTopics(brokers, [dlq]);
    fixture.defer(() => reader.stop());
    await consumer.start();

    const [poison, next] = await fixture.produce(topic, [
      { key: 'c-1', type: 'ChargeCard', payload: { card: 'declined', amount: 5 }, headers: { tenant: 'acme' } },
      { key: 'c-1', type: 'ChargeCard', payload: { card: 'ok', amount: 7 } },
    ]);

    // The record after the poison one is handled: the partition moved on.
    await expect.poll(() => consumer.counters.processed, { timeout: 20_000 }).toBe(1);
    expect(await appliedTimes(knex)).toEqual({ [next!]: 1 });

    // A sentinel enqueued after the dead letter is published after it (same key, id
    // order): once it arrived, everything dead-lettered before it has arrived too.
    const [sentinel] = await knex.transaction((trx) =>
      outbox.enqueue(trx, [{ topic: dlq, key: 'c-1', type: 'Sentinel', payload: {} }]),
    );
    const all = await reader.waitFor('the sentinel', (r) => r.some((x) => x.headers[HEADER.id] === sentinel!.id));
    const dead = all.filter((r) => r.headers[HEADER.id] !== sentinel!.id);
    expect(dead).toHaveLength(1);
    expect(dead[0]!.key).toBe('c-1');
    expect(JSON.parse(dead[0]!.value!)).toEqual({ card: 'declined', amount: 5 });
    expect(dead[0]!.headers).toMatchObject({
      [DLQ_HEADER.reason]: 'max-attempts',
      [DLQ_HEADER.error]: 'card declined: insufficient funds',
      [DLQ_HEADER.errorCode]: 'Error',
      [DLQ_HEADER.attempts]: '3',
      [DLQ_HEADER.originalTopic]: topic,
      [DLQ_HEADER.originalPartition]: '0',
      [DLQ_HEADER.originalOffset]: '0',
      [DLQ_HEADER.originalMessageId]: poison,
      [DLQ_HEADER.valueEncoding]: 'json',
      [HEADER.type]: 'ChargeCard',
      [HEADER.causationId]: poison,
      tenant: 'acme',
    });
    expect(await inboxRows(knex, consumer)).toEqual([
      expect.objectContaining({ message_id: poison, state: 'dead', attempts: 3 }),
      expect.objectContaining({ message_id: next, state: 'processed', attempts: 1 }),
    ]);
    expect(consumer.counters).toMatchObject({ processed: 1, retried: 2, deadLettered: 1 });
  });

  it('dead-letters at once, without retrying, when the handler throws a non-retriable error', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('refunds');
    await createTopics(brokers, [topic, `${topic}.dlq`], 1);
    const consumer = await fixture.consumer({ outbox, name: uniqueName('refunds'), topics: [topic] });
    consumer.handle('RefundRequested', async () => {
      throw new NonRetriableError('refund exceeds the captured amount', { businessCode: 'refund_too_large' });
    });
    const deadLettered: Array<{ reason: string; attempts: number; error: string }> = [];
    consumer.on('consumer:deadLettered', ({ reason, attempts, error }) =>
      deadLettered.push({ reason, attempts, error }),
    );
    await consumer.start();

    const [id] = await fixture.produce(topic, [{ key: 'r-1', type: 'RefundRequested', payload: { amount: 99 } }]);

    await expect.poll(() => consumer.counters.deadLettered, { timeout: 20_000 }).toBe(1);
    expect(deadLettered).toEqual([
      { reason: 'non-retriable', attempts: 1, error: 'refund exceeds the captured amount' },
    ]);
    expect(consumer.counters.retried).toBe(0);
    const [row] = await knex('eventual.outbox')
      .where({ topic: `${topic}.dlq` })
      .select('headers');
    expect(row.headers).toMatchObject({
      [DLQ_HEADER.errorCode]: 'refund_too_large',
      [DLQ_HEADER.originalMessageId]: id,
    });
  });
});
