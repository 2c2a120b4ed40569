import type { HandlerContext } from '@eventual/consumer';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { apply, type consumerFixture, uniqueName } from './support.js';

/**
 * Three services talking only through Kafka, started: a shop (outbox and relay) that
 * enqueues orders; billing, whose handler applies an `OrderPlaced` and emits a
 * `PaymentRequested` through its bound outbox (relayed); and a ledger that applies
 * the payment. `observe` sees every handler call, before it writes.
 */
export async function orderPaymentChain(
  fixture: ReturnType<typeof consumerFixture>,
  observe: (context: HandlerContext<unknown>) => void = () => {},
) {
  const orders = randomTopic('orders');
  const payments = randomTopic('payments');
  await createTopics(fixture.services.kafkaBrokers, [orders, `${orders}.dlq`, payments, `${payments}.dlq`], 1);
  const [shop, billing, ledger] = [await fixture.service(), await fixture.service(), await fixture.service()];
  const billingName = uniqueName('billing');
  const ledgerName = uniqueName('ledger');
  const billingConsumer = await fixture.consumer({ outbox: billing.outbox, name: billingName, topics: [orders] });
  billingConsumer.handle('OrderPlaced', async (context) => {
    observe(context);
    const { trx, message, outbox } = context;
    await apply(trx, message);
    await outbox.enqueue({ topic: payments, key: message.key, type: 'PaymentRequested', payload: message.payload });
  });
  const ledgerConsumer = await fixture.consumer({ outbox: ledger.outbox, name: ledgerName, topics: [payments] });
  ledgerConsumer.handle('PaymentRequested', (context) => {
    observe(context);
    return apply(context.trx, context.message);
  });
  await Promise.all([
    fixture.relay(shop.outbox).start(),
    fixture.relay(billing.outbox).start(),
    billingConsumer.start(),
    ledgerConsumer.start(),
  ]);
  return { orders, payments, shop, billing, ledger, billingName, ledgerName, billingConsumer, ledgerConsumer };
}
