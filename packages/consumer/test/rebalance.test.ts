import { NonRetriableError } from '@eventual/consumer';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { apply, consumerFixture, type TestMessage, uniqueName } from './support.js';

const fixture = consumerFixture('rebalance');
const brokers = fixture.services.kafkaBrokers;

interface Adjustment {
  sku: string;
  seq: number;
}

/**
 * Applies a stock adjustment and checks per-key order on the way: each sku's
 * adjustments must arrive as 1, 2, 3, ... A gap or repeat is dead-lettered (and fails
 * the test), so "exactly once" and "in order per key" are checked by the data itself.
 */
async function adjust(trx: Knex.Transaction, sku: string, seq: number): Promise<void> {
  const moved = await trx('stock')
    .where({ sku, last_seq: seq - 1 })
    .update({ last_seq: seq });
  if (moved !== 1) {
    const row = await trx('stock').where({ sku }).first();
    throw new NonRetriableError(`sku ${sku}: got seq ${seq} after ${row?.last_seq ?? 'nothing'}`);
  }
}

describe('rebalances', () => {
  it('applies every message exactly once, in order per key, when an instance joins and another leaves mid-stream', async () => {
    const { knex, outbox } = await fixture.service();
    const skus = Array.from({ length: 24 }, (_, i) => `sku-${i}`);
    await knex.schema.createTable('stock', (t) => {
      t.text('sku').primary();
      t.integer('last_seq').notNullable();
    });
    await knex('stock').insert(skus.map((sku) => ({ sku, last_seq: 0 })));
    const topic = randomTopic('stock');
    await createTopics(brokers, [topic, `${topic}.dlq`], 6);
    const name = uniqueName('inventory');

    // Until b owns partitions, a fails (retriably) every record after its 50th: a cannot
    // drain the backlog before b joins, so the rebalance happens mid-stream whatever
    // the machine's speed. A retry backoff is cut short by the rebalance, so a rejoins
    // at once, and the held records move to b with their attempt counts.
    let holdA = true;
    const instance = async (label: string) => {
      const consumer = await fixture.consumer({
        outbox,
        name,
        topics: [topic],
        subscriber: fixture.subscriber(name, 2),
        maxAttempts: 1_000,
      });
      consumer.handle<Adjustment>('StockAdjusted', async ({ trx, message }) => {
        if (label === 'a' && holdA && consumer.counters.processed >= 50) throw new Error('held until b joins');
        await adjust(trx, message.payload.sku, message.payload.seq);
        await apply(trx, message, label);
      });
      consumer.on('consumer:assigned', ({ partitions }) => {
        if (label === 'b' && partitions.length > 0) holdA = false;
      });
      await consumer.start();
      return consumer;
    };
    const seq = new Map<string, number>();
    const produced: string[] = [];
    const produce = async (count: number) => {
      for (let sent = 0; sent < count; sent += 25) {
        const batch: TestMessage[] = Array.from({ length: 25 }, (_, i) => {
          const sku = skus[(sent + i) % skus.length]!;
          const next = (seq.get(sku) ?? 0) + 1;
          seq.set(sku, next);
          return { key: sku, type: 'StockAdjusted', payload: { sku, seq: next } };
        });
        produced.push(...(await fixture.produce(topic, batch)));
      }
    };
    const appliedCount = async () => Number((await knex('applied').count({ n: '*' }).first())?.n);

    const a = await instance('a');
    await produce(300);
    await expect.poll(() => a.counters.retried, { timeout: 30_000 }).toBeGreaterThan(0);
    const b = await instance('b'); // rebalance 1, mid-stream: b takes over some of a's partitions
    expect(holdA).toBe(false);
    expect(a.counters.processed).toBeLessThan(300);
    await produce(300);
    await a.stop(); // rebalance 2: a leaves while records are waiting; b gets all partitions

    await expect.poll(appliedCount, { timeout: 60_000 }).toBe(600);
    const applied = await knex('applied').select('message_id', 'times', 'applied_by');
    expect(applied.filter((r) => r.times !== 1)).toEqual([]);
    expect(new Set(applied.map((r) => r.message_id))).toEqual(new Set(produced));
    expect(new Set(applied.map((r) => r.applied_by))).toEqual(new Set(['a', 'b']));
    const stock = await knex('stock').select('sku', 'last_seq').orderBy('sku');
    expect(stock).toEqual(
      skus.map((sku) => ({ sku, last_seq: seq.get(sku) })).sort((x, y) => x.sku.localeCompare(y.sku)),
    );
    expect(a.counters.deadLettered + b.counters.deadLettered).toBe(0);
    expect(a.counters.processed + b.counters.processed).toBe(600);
  });
});
