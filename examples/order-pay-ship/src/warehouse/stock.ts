import { type CommandHandler, CommandRejected } from '@eventual/saga';
import type { StockCommand } from '../shared/messages.js';

// Participant handlers (see payment/handlers.ts for what the helper guarantees).

/**
 * Reserves in one conditional UPDATE: however many orders race for the last units,
 * each decrement re-checks `stock >= quantity` on the locked row, so stock never goes
 * negative and exactly as many orders as there are units get one.
 */
export const reserveStock: CommandHandler<StockCommand> = async ({ trx, command }) => {
  const { orderId, sku, quantity } = command.payload;
  const reserved = await trx.raw('update products set stock = stock - ? where sku = ? and stock >= ? returning stock', [
    quantity,
    sku,
    quantity,
  ]);
  if (reserved.rows.length === 0) {
    const product = await trx('products').where({ sku }).first('stock');
    throw new CommandRejected(product ? `out of stock (${product.stock} left of ${sku})` : `unknown sku ${sku}`, {
      reply: { sku, quantity },
    });
  }
  await trx('stock_moves').insert({ order_id: orderId, sku, kind: 'reserve', quantity });
  return { reserved: quantity };
};

/** Puts a reservation back. Exactly once, through the participant's step log. */
export const releaseStock: CommandHandler<StockCommand> = async ({ trx, command }) => {
  const { orderId, sku, quantity } = command.payload;
  await trx.raw('update products set stock = stock + ? where sku = ?', [quantity, sku]);
  await trx('stock_moves').insert({ order_id: orderId, sku, kind: 'release', quantity });
  return { released: quantity };
};
