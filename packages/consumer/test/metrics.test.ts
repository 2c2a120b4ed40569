import { HEADER } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { recordMetrics } from '../../outbox/test/telemetry-support.js';
import { orderPaymentChain } from './chain-support.js';
import { consumerFixture } from './support.js';

const fixture = consumerFixture('metrics');

const { total, observations, points } = recordMetrics();

describe('metrics (OpenTelemetry messaging metrics, and eventual.* counters)', () => {
  it('counts what the relays sent and the consumers consumed, timed, with duplicates and dead letters by reason', async () => {
    const chain = await orderPaymentChain(fixture);
    const { orders, payments, shop, billingName, ledgerName, billingConsumer, ledgerConsumer } = chain;
    const [placed] = await shop.knex.transaction((trx) =>
      shop.outbox.enqueue(trx, [{ topic: orders, key: 'order-1', type: 'OrderPlaced', payload: {} }]),
    );
    await expect.poll(() => ledgerConsumer.counters.processed, { timeout: 30_000 }).toBe(1);
    // The same record again (a relay republish), and a record that is not an eventual message.
    const [row] = await shop.knex('eventual.outbox').where({ id: placed!.id }).select('key', 'payload', 'headers');
    await fixture.produceRaw(orders, [
      { key: row.key, value: JSON.stringify(row.payload), headers: row.headers },
      { key: 'x', value: 'not json', headers: { [HEADER.type]: 'OrderPlaced' } },
    ]);
    await expect
      .poll(() => billingConsumer.counters, { timeout: 30_000 })
      .toMatchObject({ duplicates: 1, deadLettered: 1 });
    await expect
      .poll(() => total('messaging.client.sent.messages', { 'messaging.destination.name': `${orders}.dlq` }), {
        timeout: 30_000,
      })
      .toBe(1);

    const kafka = { 'messaging.system': 'kafka' };
    const send = { ...kafka, 'messaging.operation.name': 'send' };
    for (const topic of [orders, payments, `${orders}.dlq`]) {
      const at = { ...send, 'messaging.destination.name': topic };
      expect(await total('messaging.client.sent.messages', at), topic).toBe(1);
      expect(await observations('messaging.client.operation.duration', at), topic).toBe(1);
    }
    expect(await points('messaging.client.sent.messages', { 'error.type': 'retriable' })).toEqual([]);

    const billing = {
      ...kafka,
      'messaging.operation.name': 'process',
      'messaging.destination.name': orders,
      'messaging.consumer.group.name': billingName,
    };
    const ledger = { ...billing, 'messaging.destination.name': payments, 'messaging.consumer.group.name': ledgerName };
    expect(
      await total('messaging.client.consumed.messages', { ...billing, 'messaging.destination.partition.id': '0' }),
    ).toBe(3);
    expect(await total('messaging.client.consumed.messages', ledger)).toBe(1);
    expect(await observations('messaging.process.duration', billing)).toBe(3);
    expect(await observations('messaging.process.duration', { ...billing, 'error.type': 'malformed' })).toBe(1);
    expect(await observations('messaging.process.duration', ledger)).toBe(1);
    expect(await total('eventual.consumer.duplicates', billing)).toBe(1);
    expect(await total('eventual.consumer.duplicates', ledger)).toBe(0);
    expect(
      await total('eventual.consumer.dead_lettered', {
        ...billing,
        'eventual.consumer.dead_letter.reason': 'malformed',
      }),
    ).toBe(1);
  });
});
