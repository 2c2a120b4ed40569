import { tracing } from '@eventual/core';
import { HEADER } from '@eventual/outbox';
import { trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { orderPaymentChain } from './chain-support.js';
import { consumerFixture } from './support.js';

const fixture = consumerFixture('tracing_off');
const standard = [HEADER.causationId, HEADER.correlationId, HEADER.id, HEADER.type].sort();

describe('tracing with @opentelemetry/api installed but no SDK registered', () => {
  it('is off: messages flow through two consumers, no span is made active, no trace header is written', async () => {
    expect(tracing('@eventual/outbox')).toBeUndefined();
    const activeInHandlers: unknown[] = [];
    const { orders, payments, shop, billing, billingConsumer, ledgerConsumer } = await orderPaymentChain(
      fixture,
      () => void activeInHandlers.push(trace.getActiveSpan()),
    );

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
