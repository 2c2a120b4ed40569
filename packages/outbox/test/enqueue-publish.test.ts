import { createTopics, randomTopic, readTopics } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('enqueue');

describe('enqueue + relay', () => {
  it('publishes nothing when the business transaction rolls back, and exactly the enqueued messages when it commits', async () => {
    const { knex, outbox } = await fixture.database();
    const topic = randomTopic('orders');
    // One partition: a sentinel read last proves nothing else (a rolled-back or duplicate
    // message) was published before it.
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    await knex.schema.createTable('orders', (t) => {
      t.string('id').primary();
      t.integer('total').notNullable();
    });

    await expect(
      knex.transaction(async (trx) => {
        await trx('orders').insert({ id: 'o-rolled-back', total: 1 });
        await outbox.enqueue(trx, { topic, key: 'o-rolled-back', type: 'OrderCreated', payload: { total: 1 } });
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');

    const committed = await knex.transaction(async (trx) => {
      await trx('orders').insert({ id: 'o-1', total: 250 });
      return outbox.enqueue(trx, [
        {
          topic,
          key: 'o-1',
          type: 'OrderCreated',
          payload: { total: 250, lines: [{ sku: 'A', qty: 2 }] },
          headers: { tenant: 'acme' },
        },
        {
          topic,
          key: 'o-1',
          type: 'OrderConfirmed',
          payload: { at: '2026-11-21T00:00:00.000Z' },
          correlationId: 'corr-1',
        },
      ]);
    });

    const reader = await readTopics(fixture.services.kafkaBrokers, [topic]);
    fixture.defer(() => reader.stop());
    const relay = fixture.relay(outbox);
    await relay.start();
    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 10_000 }).toBe(0);
    const [sentinel] = await knex.transaction((trx) =>
      outbox.enqueue(trx, [{ topic, key: 'sentinel', type: 'Sentinel', payload: {} }]),
    );
    const all = await reader.waitFor('the sentinel', (r) => r.some((x) => x.headers[HEADER.id] === sentinel?.id));
    const records = all.filter((r) => r.headers[HEADER.id] !== sentinel?.id);

    expect(records).toHaveLength(2);
    expect(records.map((r) => r.headers[HEADER.id])).toEqual(committed.map((m) => m.id));
    const [created, confirmed] = records;
    expect(created?.key).toBe('o-1');
    expect(JSON.parse(created?.value ?? 'null')).toEqual({ total: 250, lines: [{ sku: 'A', qty: 2 }] });
    expect(created?.headers).toMatchObject({
      tenant: 'acme',
      [HEADER.type]: 'OrderCreated',
      [HEADER.correlationId]: committed[0]?.id,
      [HEADER.causationId]: committed[0]?.id,
    });
    expect(confirmed?.headers).toMatchObject({ [HEADER.type]: 'OrderConfirmed', [HEADER.correlationId]: 'corr-1' });
    expect(records.every((r) => r.partition === created?.partition)).toBe(true);
    const rows = await knex('eventual.outbox')
      .whereIn(
        'id',
        committed.map((m) => m.id),
      )
      .select('state');
    expect(rows.map((r) => r.state)).toEqual(['published', 'published']);
  });
});
