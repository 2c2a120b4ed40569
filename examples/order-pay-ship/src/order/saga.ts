import { defineSaga, type SagaDefinition } from '@eventual/saga';
import type { Knex } from 'knex';
import { reasonOf } from '../shared/messages.js';
import { MESSAGE, type Topics } from '../shared/topics.js';

/** The saga's data: the order, and why it failed once a step failed. */
export type OrderData = {
  orderId: string;
  customerId: string;
  sku: string;
  quantity: number;
  /** Integer cents: price x quantity, fixed when the order was placed. */
  amount: number;
  failure: string | null;
};

export interface SagaTiming {
  /** How long to wait for payment and warehouse replies before re-sending. */
  stepDeadlineMs: number;
  /** How long to wait for the shipment reply (the carrier is slow and flaky) before re-sending. */
  shipDeadlineMs: number;
}

export const DEFAULT_TIMING: SagaTiming = { stepDeadlineMs: 20_000, shipDeadlineMs: 10_000 };

/**
 * order-fulfilment:
 *
 *   1 create-order    local        undo: order CANCELLED with the reason
 *   2 charge-payment  payment      ChargePayment   undo: RefundPayment
 *   3 reserve-stock   warehouse    ReserveStock    undo: ReleaseStock
 *   4 ship            warehouse    ShipOrder       undo: CancelShipment   (the carrier, via prepared reply + check-back)
 *   5 complete-order  local        order COMPLETED
 *
 * A failure reply compensates the steps before it, in reverse: a declined charge
 * cancels the order; no stock refunds the charge, then cancels. A step with no
 * reply by its deadline is re-sent (participants answer a re-sent command from their
 * log without acting twice); after the last attempt that step is compensated too,
 * since its outcome is unknown.
 */
export function orderFulfilment(topics: Topics, timing: SagaTiming = DEFAULT_TIMING): SagaDefinition<OrderData> {
  const payment = (type: string) => ({
    topic: topics.paymentCommands,
    type,
    payload: (d: Readonly<OrderData>) => ({ orderId: d.orderId, customerId: d.customerId, amount: d.amount }),
  });
  const stock = (type: string) => ({
    topic: topics.warehouseCommands,
    type,
    payload: (d: Readonly<OrderData>) => ({ orderId: d.orderId, sku: d.sku, quantity: d.quantity }),
  });
  const shipment = (type: string) => ({
    topic: topics.warehouseCommands,
    type,
    payload: (d: Readonly<OrderData>) => ({
      orderId: d.orderId,
      customerId: d.customerId,
      sku: d.sku,
      quantity: d.quantity,
    }),
  });
  const failedWith =
    (what: string) =>
    (data: Readonly<OrderData>, reply: Parameters<typeof reasonOf>[0]): OrderData => ({
      ...data,
      failure: `${what}: ${reasonOf(reply)}`,
    });

  return defineSaga<OrderData>('order-fulfilment')
    .step('create-order')
    .invokeLocal(async ({ trx, data }) => {
      // POST /orders inserted the order in this same transaction; the step only
      // confirms it is there and pending.
      const order = await trx('orders').where({ id: data.orderId, status: 'PENDING' }).first('id');
      if (!order) throw new Error(`order ${data.orderId} is not pending`);
    })
    .withCompensation(async ({ trx, data }) => {
      await cancelOrder(trx, data.orderId, data.failure ?? 'a step got no reply before its deadline');
    })
    .step('charge-payment')
    .invokeParticipant(payment(MESSAGE.chargePayment))
    .onFailure(failedWith('payment declined'))
    .withCompensation(payment(MESSAGE.refundPayment))
    .retry({ maxAttempts: 3 })
    .deadline({ afterMs: timing.stepDeadlineMs, onTimeout: 'retry' })
    .step('reserve-stock')
    .invokeParticipant(stock(MESSAGE.reserveStock))
    .onFailure(failedWith('not reserved'))
    .withCompensation(stock(MESSAGE.releaseStock))
    .retry({ maxAttempts: 3 })
    .deadline({ afterMs: timing.stepDeadlineMs, onTimeout: 'retry' })
    .step('ship')
    .invokeParticipant(shipment(MESSAGE.shipOrder))
    .onFailure(failedWith('not shipped'))
    .withCompensation(shipment(MESSAGE.cancelShipment))
    .retry({ maxAttempts: 3 })
    .deadline({ afterMs: timing.shipDeadlineMs, onTimeout: 'retry' })
    .step('complete-order')
    .invokeLocal(async ({ trx, data }) => {
      const updated = await trx('orders')
        .where({ id: data.orderId, status: 'PENDING' })
        .update({ status: 'COMPLETED', updated_at: trx.raw('clock_timestamp()') });
      if (updated !== 1) throw new Error(`order ${data.orderId} is not pending; cannot complete it`);
    })
    .build();
}

async function cancelOrder(trx: Knex.Transaction, orderId: string, reason: string): Promise<void> {
  await trx('orders')
    .where({ id: orderId, status: 'PENDING' })
    .update({ status: 'CANCELLED', reason: reason.slice(0, 500), updated_at: trx.raw('clock_timestamp()') });
}
