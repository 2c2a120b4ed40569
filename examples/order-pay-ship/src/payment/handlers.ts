import { type CommandHandler, CommandRejected } from '@eventual/saga';
import type { PaymentCommand } from '../shared/messages.js';

// Both run inside the participant helper: in the consumer's transaction (a savepoint
// of it), with the saga reply enqueued in the same transaction, and at most once per
// saga step (the helper's step log answers a re-sent command from what it stored).
// Payloads were validated and typed by the participant's `parse` (see service.ts): a
// malformed command gets a failure reply, so the saga compensates instead of waiting.

/**
 * Charges the wallet only if the balance covers the amount, in one conditional
 * UPDATE: concurrent charges of one wallet serialise on its row, and none can take
 * it below zero. No row updated means declined, and a declined charge writes nothing.
 */
export const chargePayment: CommandHandler<PaymentCommand> = async ({ trx, command }) => {
  const { orderId, customerId, amount } = command.payload;
  const charged = await trx.raw(
    'update wallets set balance = balance - ? where customer_id = ? and balance >= ? returning balance',
    [amount, customerId, amount],
  );
  if (charged.rows.length === 0) {
    const wallet = await trx('wallets').where({ customer_id: customerId }).first('customer_id');
    throw new CommandRejected(wallet ? 'insufficient funds' : `no wallet for customer ${customerId}`, {
      reply: { customerId, amount },
    });
  }
  await trx('payments').insert({ order_id: orderId, customer_id: customerId, kind: 'charge', amount });
  return { charged: amount };
};

/** Credits the charge back. Exactly once: the participant's step log turns a repeat into a replay. */
export const refundPayment: CommandHandler<PaymentCommand> = async ({ trx, command }) => {
  const { orderId, customerId, amount } = command.payload;
  await trx.raw('update wallets set balance = balance + ? where customer_id = ?', [amount, customerId]);
  await trx('payments').insert({ order_id: orderId, customer_id: customerId, kind: 'refund', amount });
  return { refunded: amount };
};
