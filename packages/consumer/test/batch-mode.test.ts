import { randomUUID } from 'node:crypto';
import { DLQ_HEADER } from '@eventual/consumer';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture, inboxRows, uniqueName } from './support.js';

const fixture = consumerFixture('batch');
const brokers = fixture.services.kafkaBrokers;

/**
 * Transactions that settled the consumer's inbox rows: now() is the transaction's start
 * time, so rows written by one transaction share their processed_at.
 */
async function inboxTransactions(knex: Knex, consumer: string): Promise<number> {
  const [row] = await knex('eventual.inbox').where({ consumer }).countDistinct({ n: 'processed_at' });
  return Number(row!.n);
}

async function deadLetters(knex: Knex, topic: string) {
  const rows = await knex('eventual.outbox')
    .where({ topic: `${topic}.dlq` })
    .select('headers');
  return rows.map((r: { headers: Record<string, string> }) => r.headers);
}

describe('batch mode', () => {
  it('applies 2,000 records once, in few transactions, with republished copies inside and across batches', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('ledger');
    await createTopics(brokers, [topic], 2);
    const messages = Array.from({ length: 2_000 }, (_, i) => ({
      key: `account-${i % 50}`,
      type: 'Posted',
      payload: { n: i },
    }));
    const ids = await fixture.produce(topic, messages);
    // Copies of 100 messages with their original ids, as a relay that lost acks would
    // republish them: every 20th one straight behind its original (the same batch), and
    // 50 of the earliest ones once everything else is on the topic (another batch).
    const copies = [
      ...ids.slice(1_000, 1_050).map((id, i) => ({ ...messages[1_000 + i]!, id })),
      ...ids.slice(0, 50).map((id, i) => ({ ...messages[i]!, id })),
    ];
    await fixture.produce(topic, copies);

    const name = uniqueName('ledger');
    const consumer = await fixture.consumer({ outbox, name, topics: [topic], batchSize: 100 });
    consumer.handle('Posted', ({ trx, message }) => apply(trx, message));
    await consumer.start();

    await expect
      .poll(() => consumer.counters.processed + consumer.counters.duplicates, { timeout: 60_000 })
      .toBe(2_100);
    expect(consumer.counters).toMatchObject({ processed: 2_000, duplicates: 100, retried: 0, deadLettered: 0 });
    expect(await appliedTimes(knex)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    const states = (await inboxRows(knex, consumer)).map((r) => r.state);
    expect(states).toEqual(Array(2_000).fill('processed'));
    // Batches really formed: 2,000 records in at most 100 transactions, not 2,000.
    expect(await inboxTransactions(knex, name)).toBeLessThanOrEqual(100);
    await expect.poll(() => consumer.lag().total, { timeout: 10_000 }).toBe(0);
  });

  it('rolls a batch back when one handler fails, then settles its records one by one: nothing applied twice', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('charges');
    await createTopics(brokers, [topic], 1);
    const name = uniqueName('charges');
    const consumer = await fixture.consumer({ outbox, name, topics: [topic], batchSize: 50, maxAttempts: 3 });
    const flaky = new Map<string, number>();
    consumer.handle('Charge', async ({ trx, message }) => {
      await apply(trx, message); // written on every attempt: kept only by the one that commits
      const { card } = message.payload as { card: string };
      if (card === 'declined') throw new Error('card declined');
      if (card === 'flaky') {
        const seen = (flaky.get(message.id) ?? 0) + 1;
        flaky.set(message.id, seen);
        if (seen <= 2) throw new Error(`gateway timeout #${seen}`);
      }
    });
    const ids = await fixture.produce(
      topic,
      Array.from({ length: 200 }, (_, i) => ({
        key: `card-${i % 7}`,
        type: 'Charge',
        payload: { n: i, card: i === 120 ? 'declined' : i === 30 ? 'flaky' : 'ok' },
      })),
    );
    await consumer.start();

    await expect
      .poll(() => consumer.counters.processed + consumer.counters.deadLettered, { timeout: 60_000 })
      .toBe(200);
    const declined = ids[120]!;
    expect(consumer.counters).toMatchObject({ processed: 199, deadLettered: 1, duplicates: 0 });
    expect(await appliedTimes(knex)).toEqual(
      Object.fromEntries(ids.filter((id) => id !== declined).map((id) => [id, 1])),
    );
    const rows = await inboxRows(knex, consumer);
    expect(rows.find((r) => r.message_id === declined)).toMatchObject({ state: 'dead', attempts: 3 });
    expect(rows.find((r) => r.message_id === ids[30])).toMatchObject({ state: 'processed' });
    expect(rows.filter((r) => r.state === 'processed')).toHaveLength(199);
    const dead = await deadLetters(knex, topic);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({
      [DLQ_HEADER.reason]: 'max-attempts',
      [DLQ_HEADER.attempts]: '3',
      [DLQ_HEADER.originalMessageId]: declined,
      [DLQ_HEADER.originalOffset]: '120',
    });
    // Only the batches holding a failing record went one by one: the others committed
    // whole (200 records, 4 batches; the two failing ones give at most 50 + 50 single
    // transactions).
    expect(await inboxTransactions(knex, name)).toBeLessThan(110);
  });

  it('dead-letters a malformed record in a batch and applies the others once', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('orders');
    await createTopics(brokers, [topic], 1);
    const consumer = await fixture.consumer({ outbox, name: uniqueName('orders'), topics: [topic], batchSize: 20 });
    consumer.handle('OrderPlaced', ({ trx, message }) => apply(trx, message));
    const before = await fixture.produce(
      topic,
      Array.from({ length: 10 }, (_, i) => ({ key: 'o', type: 'OrderPlaced', payload: { n: i } })),
    );
    await fixture.produceRaw(topic, [
      { key: 'o', value: '{"total": 5', headers: { [HEADER.id]: randomUUID(), [HEADER.type]: 'OrderPlaced' } },
    ]);
    const after = await fixture.produce(
      topic,
      Array.from({ length: 10 }, (_, i) => ({ key: 'o', type: 'OrderPlaced', payload: { n: 10 + i } })),
    );
    await consumer.start();

    await expect.poll(() => consumer.counters.processed + consumer.counters.deadLettered, { timeout: 30_000 }).toBe(21);
    expect(consumer.counters).toMatchObject({ processed: 20, deadLettered: 1 });
    expect(await appliedTimes(knex)).toEqual(Object.fromEntries([...before, ...after].map((id) => [id, 1])));
    const dead = await deadLetters(knex, topic);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ [DLQ_HEADER.reason]: 'malformed', [DLQ_HEADER.originalOffset]: '10' });
  });

  it.each([1, 10])('refuses to let a handler end the shared transaction (batchSize %i)', async (batchSize) => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('refunds');
    await createTopics(brokers, [topic], 1);
    const consumer = await fixture.consumer({ outbox, name: uniqueName('refunds'), topics: [topic], batchSize });
    consumer.handle('Refund', async ({ trx, message }) => {
      await apply(trx, message);
      if ((message.payload as { n: number }).n === 2) await trx.commit();
    });
    const ids = await fixture.produce(
      topic,
      Array.from({ length: 5 }, (_, n) => ({ key: 'r', type: 'Refund', payload: { n } })),
    );
    await consumer.start();

    await expect.poll(() => consumer.counters.processed + consumer.counters.deadLettered, { timeout: 30_000 }).toBe(5);
    expect(consumer.counters).toMatchObject({ processed: 4, deadLettered: 1 });
    expect(await appliedTimes(knex)).toEqual(Object.fromEntries(ids.filter((_, n) => n !== 2).map((id) => [id, 1])));
    const dead = await deadLetters(knex, topic);
    expect(dead).toEqual([
      expect.objectContaining({
        [DLQ_HEADER.reason]: 'non-retriable',
        [DLQ_HEADER.errorCode]: 'transaction_owned_by_consumer',
        [DLQ_HEADER.originalMessageId]: ids[2],
      }),
    ]);
  });
});
