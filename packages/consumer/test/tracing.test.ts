import { NonRetriableError } from '@eventual/consumer';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { HEADER, type MessageInput } from '@eventual/outbox';
import { type Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { ids, only, recordSpans, traceparentOf } from '../../outbox/test/telemetry-support.js';
import { orderPaymentChain } from './chain-support.js';
import { apply, consumerFixture, uniqueName } from './support.js';

const fixture = consumerFixture('tracing');
const brokers = fixture.services.kafkaBrokers;
const recorder = recordSpans();
const wait = { timeout: 30_000 };

/** Runs `work` inside an active span named `name`, as a traced business operation would. */
async function inSpan<T>(name: string, work: (span: Span) => Promise<T>): Promise<T> {
  return recorder.tracer().startActiveSpan(name, async (span) => {
    try {
      return await work(span);
    } finally {
      span.end();
    }
  });
}

describe('tracing (OpenTelemetry messaging spans)', () => {
  it('makes one trace from the business transaction through two consumers, with send spans linked to it', async () => {
    const { orders, payments, shop, billing, billingName, ledgerName } = await orderPaymentChain(fixture);

    const order: MessageInput = { topic: orders, key: 'order-1', type: 'OrderPlaced', payload: { orderId: 'order-1' } };
    const placed = await inSpan('checkout', () => shop.knex.transaction((trx) => shop.outbox.enqueue(trx, order)));
    const processed = `process ${payments}`;
    await expect.poll(() => recorder.spans().some((s) => s.name === processed), wait).toBe(true);

    const spans = recorder.spans();
    const checkout = only(spans, 'checkout');
    const createOrder = only(spans, `create ${orders}`);
    const processOrder = only(spans, `process ${orders}`);
    const createPayment = only(spans, `create ${payments}`);
    const processPayment = only(spans, processed);
    const sendOrder = only(spans, `send ${orders}`);
    const sendPayment = only(spans, `send ${payments}`);
    const { traceId } = ids(checkout);
    // One trace, parent by parent: checkout -> create -> process -> create -> process.
    expect([checkout, createOrder, processOrder, createPayment, processPayment].map(ids)).toEqual([
      { traceId, spanId: ids(checkout).spanId, parent: undefined },
      { traceId, spanId: ids(createOrder).spanId, parent: ids(checkout).spanId },
      { traceId, spanId: ids(processOrder).spanId, parent: ids(createOrder).spanId },
      { traceId, spanId: ids(createPayment).spanId, parent: ids(processOrder).spanId },
      { traceId, spanId: ids(processPayment).spanId, parent: ids(createPayment).spanId },
    ]);
    expect(
      [createOrder, processOrder, createPayment, processPayment, sendOrder, sendPayment].map((s) => s.kind),
    ).toEqual([
      SpanKind.PRODUCER,
      SpanKind.CONSUMER,
      SpanKind.PRODUCER,
      SpanKind.CONSUMER,
      SpanKind.CLIENT,
      SpanKind.CLIENT,
    ]);

    // The creation context is stored with the row and published unchanged: the row's
    // traceparent is the create span's, the one the consumer's process span hangs under.
    const [row] = await shop.knex('eventual.outbox').where({ id: placed.id }).select('headers');
    expect(row.headers[HEADER.traceparent]).toBe(traceparentOf(createOrder.spanContext()));
    expect(placed.headers[HEADER.traceparent]).toBe(traceparentOf(createOrder.spanContext()));
    const [payment] = await billing.knex('eventual.outbox').where({ topic: payments }).select('id', 'headers');
    expect(payment.headers[HEADER.traceparent]).toBe(traceparentOf(createPayment.spanContext()));

    // Each relay batch is a trace of its own, linked to the creation context of each message it carried.
    for (const [send, create, id, topic] of [
      [sendOrder, createOrder, placed.id, orders],
      [sendPayment, createPayment, payment.id, payments],
    ] as const) {
      expect(ids(send).traceId).not.toBe(traceId);
      expect(ids(send).parent).toBeUndefined();
      const { traceId: linkedTrace, spanId } = create.spanContext();
      expect(send.links).toEqual([
        {
          context: { traceId: linkedTrace, spanId, traceFlags: 1, isRemote: true },
          attributes: { 'messaging.message.id': id },
        },
      ]);
      expect(send.attributes).toEqual({
        'messaging.system': 'kafka',
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'messaging.destination.name': topic,
        'messaging.batch.message_count': 1,
      });
      expect(send.status.code).toBe(SpanStatusCode.UNSET);
    }

    expect(createOrder.attributes).toEqual({
      'messaging.system': 'kafka',
      'messaging.operation.type': 'create',
      'messaging.operation.name': 'create',
      'messaging.destination.name': orders,
      'messaging.kafka.message.key': 'order-1',
      'messaging.message.id': placed.id,
      'eventual.message.type': 'OrderPlaced',
      'eventual.outbox.state': 'pending',
    });
    expect(processOrder.attributes).toEqual({
      'messaging.system': 'kafka',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': orders,
      'messaging.destination.partition.id': '0',
      'messaging.consumer.group.name': billingName,
      'messaging.kafka.offset': 0,
      'messaging.kafka.message.key': 'order-1',
      'messaging.message.id': placed.id,
      'messaging.message.conversation_id': placed.id,
      'eventual.message.type': 'OrderPlaced',
      'eventual.consumer.name': billingName,
      'eventual.consumer.attempts': 1,
    });
    // The emitted message continues the conversation: the bound outbox set its correlation id.
    expect(createPayment.attributes).toMatchObject({
      'messaging.destination.name': payments,
      'messaging.message.id': payment.id,
      'messaging.message.conversation_id': placed.id,
    });
    expect(processPayment.attributes).toMatchObject({
      'messaging.consumer.group.name': ledgerName,
      'messaging.message.id': payment.id,
      'messaging.message.conversation_id': placed.id,
    });
  });

  it('shows a duplicate and a dead letter on the process span, the dead letter continuing the trace', async () => {
    const orders = randomTopic('orders');
    await createTopics(brokers, [orders, `${orders}.dlq`], 1);
    const shop = await fixture.service();
    const billing = await fixture.service();
    const name = uniqueName('billing');
    const consumer = await fixture.consumer({ outbox: billing.outbox, name, topics: [orders] });
    consumer.handle<{ valid: boolean }>('OrderPlaced', async ({ trx, message }) => {
      if (!message.payload.valid) throw new NonRetriableError('order total is negative');
      await apply(trx, message);
    });
    const shopRelay = fixture.relay(shop.outbox);
    await Promise.all([shopRelay.start(), fixture.relay(billing.outbox).start(), consumer.start()]);
    const placed = await inSpan('checkout-2', () =>
      shop.knex.transaction((trx) =>
        shop.outbox.enqueue(trx, [
          { topic: orders, key: 'order-1', type: 'OrderPlaced', payload: { valid: true } },
          { topic: orders, key: 'order-2', type: 'OrderPlaced', payload: { valid: false } },
        ]),
      ),
    );
    await expect.poll(() => consumer.counters, wait).toMatchObject({ processed: 1, deadLettered: 1 });
    // The relay publishes at least once: the same record again (from the row, headers and all) is a duplicate.
    const [good] = await shop.knex('eventual.outbox').where({ id: placed[0]!.id }).select('key', 'payload', 'headers');
    await fixture.produceRaw(orders, [{ key: good.key, value: JSON.stringify(good.payload), headers: good.headers }]);
    await expect.poll(() => consumer.counters, wait).toMatchObject({ duplicates: 1 });
    await expect.poll(() => recorder.spans().filter((s) => s.name === `process ${orders}`).length, wait).toBe(3);

    const spans = recorder.spans().filter((s) => ids(s).traceId === ids(only(recorder.spans(), 'checkout-2')).traceId);
    const creates = spans.filter((s) => s.name === `create ${orders}`);
    const createOf = (id: string) => creates.find((s) => s.attributes['messaging.message.id'] === id)!;
    const processes = spans.filter((s) => s.name === `process ${orders}`);
    const processOf = (id: string) => processes.filter((s) => s.attributes['messaging.message.id'] === id);
    const [applied, duplicate] = processOf(placed[0]!.id);
    const [dead] = processOf(placed[1]!.id);
    expect(ids(applied!).parent).toBe(ids(createOf(placed[0]!.id)).spanId);
    expect(ids(duplicate!).parent).toBe(ids(createOf(placed[0]!.id)).spanId);
    expect(applied!.attributes).toMatchObject({ 'eventual.consumer.attempts': 1 });
    expect(applied!.attributes).not.toHaveProperty('eventual.consumer.duplicate');
    expect(duplicate!.attributes).toMatchObject({ 'eventual.consumer.duplicate': true });
    expect(duplicate!.status.code).toBe(SpanStatusCode.UNSET);

    const [letter] = await billing
      .knex('eventual.outbox')
      .where({ topic: `${orders}.dlq` })
      .select('id', 'headers');
    expect(ids(dead!).parent).toBe(ids(createOf(placed[1]!.id)).spanId);
    expect(dead!.status).toEqual({
      code: SpanStatusCode.ERROR,
      message: 'dead-lettered (non-retriable): order total is negative',
    });
    expect(dead!.attributes).toMatchObject({
      'eventual.consumer.dead_lettered': true,
      'eventual.consumer.dead_letter.reason': 'non-retriable',
      'eventual.consumer.dead_letter.error_code': 'non_retriable',
      'eventual.consumer.dead_letter.topic': `${orders}.dlq`,
      'eventual.consumer.dead_letter.id': letter.id,
      'eventual.consumer.attempts': 1,
    });
    // The dead letter's creation context is a child of the failed record's process span.
    const createLetter = only(spans, `create ${orders}.dlq`);
    expect(ids(createLetter).parent).toBe(ids(dead!).spanId);
    expect(letter.headers[HEADER.traceparent]).toBe(traceparentOf(createLetter.spanContext()));
  });

  it('in batch mode gives each record its own span; a rolled-back batch says so, and the retry that follows is an event', async () => {
    const orders = randomTopic('orders');
    await createTopics(brokers, [orders, `${orders}.dlq`], 1);
    const shop = await fixture.service();
    const billing = await fixture.service();
    const consumer = await fixture.consumer({
      outbox: billing.outbox,
      name: uniqueName('billing'),
      topics: [orders],
      batchSize: 10,
    });
    consumer.handle<{ n: number }>('OrderPlaced', async ({ trx, message, attempt }) => {
      if (message.payload.n === 2 && attempt === 1) throw new Error('lock timeout');
      await apply(trx, message);
    });
    // Published before the consumer starts, so it fetches them together.
    const relay = fixture.relay(shop.outbox);
    await relay.start();
    const placed = await inSpan('checkout-3', () =>
      shop.knex.transaction((trx) =>
        shop.outbox.enqueue(
          trx,
          [1, 2, 3].map((n) => ({ topic: orders, key: 'order-1', type: 'OrderPlaced', payload: { n } })),
        ),
      ),
    );
    await expect.poll(async () => (await shop.outbox.stats()).pending, wait).toBe(0);
    await consumer.start();
    await expect.poll(() => consumer.counters, wait).toMatchObject({ processed: 3, retried: 1 });
    await expect
      .poll(() => recorder.spans().filter((s) => s.attributes['messaging.message.id'] === placed[1]!.id).length, wait)
      .toBe(3); // its create span, the rolled-back batch's, and its own

    const trace = ids(only(recorder.spans(), 'checkout-3')).traceId;
    const spans = recorder.spans().filter((s) => ids(s).traceId === trace);
    for (const message of placed) {
      const create = spans.find(
        (s) => s.name === `create ${orders}` && s.attributes['messaging.message.id'] === message.id,
      )!;
      const processes = spans.filter(
        (s) => s.name === `process ${orders}` && s.attributes['messaging.message.id'] === message.id,
      );
      expect(processes.length).toBeGreaterThan(0);
      for (const p of processes) expect(ids(p).parent).toBe(ids(create).spanId);
    }
    const [rolledBack, settled] = spans.filter(
      (s) => s.name === `process ${orders}` && s.attributes['messaging.message.id'] === placed[1]!.id,
    );
    expect(rolledBack!.attributes).toMatchObject({
      'eventual.consumer.batch': true,
      'eventual.consumer.batch_rolled_back': true,
    });
    expect(rolledBack!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'lock timeout' });
    // Settled on its own after the rollback: one retry, then the second attempt committed.
    expect(settled!.attributes).toMatchObject({ 'eventual.consumer.attempts': 2 });
    expect(settled!.attributes).not.toHaveProperty('eventual.consumer.batch');
    expect(settled!.status.code).toBe(SpanStatusCode.UNSET);
    expect(settled!.events.map((e) => ({ name: e.name, attributes: e.attributes }))).toEqual([
      {
        name: 'eventual.consumer.retry',
        attributes: {
          'eventual.consumer.attempt': 1,
          'eventual.consumer.retry_in_ms': expect.any(Number),
          'exception.type': 'Error',
          'exception.message': 'lock timeout',
        },
      },
    ]);
  });

  it("continues a prepared message's trace from prepare(), whenever it is committed", async () => {
    const orders = randomTopic('orders');
    await createTopics(brokers, [orders, `${orders}.dlq`], 1);
    const shop = await fixture.service();
    const billing = await fixture.service();
    const consumer = await fixture.consumer({ outbox: billing.outbox, name: uniqueName('billing'), topics: [orders] });
    consumer.handle('PaymentCaptured', ({ trx, message }) => apply(trx, message));
    shop.outbox.registerChecker({ topic: orders }, () => 'unknown');
    await Promise.all([fixture.relay(shop.outbox).start(), consumer.start()]);
    const prepared = await inSpan('charge', () =>
      shop.outbox.prepare({ topic: orders, key: 'pay-1', type: 'PaymentCaptured', payload: {} }),
    );
    await shop.outbox.commit(prepared.id); // outside any span: the creation context is the prepare's
    await expect.poll(() => recorder.spans().some((s) => s.name === `process ${orders}`), wait).toBe(true);
    const spans = recorder.spans();
    const create = only(spans, `create ${orders}`);
    expect(ids(create).parent).toBe(ids(only(spans, 'charge')).spanId);
    expect(create.attributes).toMatchObject({
      'eventual.outbox.state': 'prepared',
      'messaging.message.id': prepared.id,
    });
    expect(ids(only(spans, `process ${orders}`)).parent).toBe(ids(create).spanId);
  });
});
