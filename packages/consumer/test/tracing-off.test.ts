import { tracing } from '@eventual/core';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import { trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { apply, consumerFixture, uniqueName } from './support.js';

const fixture = consumerFixture('tracing_off');
const brokers = fixture.services.kafkaBrokers;
const standard = [HEADER.causationId, HEADER.correlationId, HEADER.id, HEADER.type].sort();

describe('tracing with @opentelemetry/api installed but no SDK registered', () => {
  it('is off: messages flow through two consumers, no span is made active, no trace header is written', async () => {
    expect(tracing('@eventual/outbox')).toBeUndefined();
    const orders = randomTopic('orders');
    const payments = randomTopic('payments');
    await createTopics(brokers, [orders, `${orders}.dlq`, payments, `${payments}.dlq`], 1);
    const shop = await fixture.service();
    const billing = await fixture.service();
    const ledger = await fixture.service();
    const activeInHandlers: unknown[] = [];
    const billingConsumer = await fixture.consumer({
      outbox: billing.outbox,
      name: uniqueName('billing'),
      topics: [orders],
    });
    billingConsumer.handle('OrderPlaced', async ({ trx, message, outbox }) => {
      activeInHandlers.push(trace.getActiveSpan());
      await apply(trx, message);
      await outbox.enqueue({ topic: payments, key: message.key, type: 'PaymentRequested', payload: {} });
    });
    const ledgerConsumer = await fixture.consumer({
      outbox: ledger.outbox,
      name: uniqueName('ledger'),
      topics: [payments],
    });
    ledgerConsumer.handle('PaymentRequested', ({ trx, message }) => {
      activeInHandlers.push(trace.getActiveSpan());
      return apply(trx, message);
    });
    await Promise.all([
      fixture.relay(shop.outbox).start(),
      fixture.relay(billing.outbox).start(),
      billingConsumer.start(),
      ledgerConsumer.start(),
    ]);

    // A caller's span from the API's no-op tracer: there is nothing to continue.
    const placed = await trace
      .getTracer('test')
      .startActiveSpan('checkout', async (span) =>
        shop.knex
          .transaction((trx) =>
            shop.outbox.enqueue(trx, { topic: orders, key: 'order-1', type: 'OrderPlaced', payload: {} }),
          )
          .finally(() => span.end()),
      );
    await expect.poll(() => ledgerConsumer.counters.processed, { timeout: 30_000 }).toBe(1);

    expect(Object.keys(placed.headers).sort()).toEqual(standard);
    const [emitted] = await billing.knex('eventual.outbox').where({ topic: payments }).select('headers');
    expect(Object.keys(emitted.headers).sort()).toEqual(standard);
    expect(billingConsumer.counters).toMatchObject({ processed: 1, errors: 0, deadLettered: 0 });
    expect(activeInHandlers).toEqual([undefined, undefined]);
  });
});
