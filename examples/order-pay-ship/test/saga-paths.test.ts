import { describe, expect, it } from 'vitest';
import { NO_FAULTS } from '../src/carrier/faults.js';
import { checkInvariants } from '../src/demo/invariants.js';
import type { SeedData } from '../src/shared/demo-data.js';
import {
  balanceOf,
  bookingsOf,
  paymentsOf,
  placeOrder,
  stockMovesOf,
  stockOf,
  waitForFinal,
  worldFixture,
} from './support.js';

const seed: SeedData = {
  customers: [
    ...['buyer-1', 'buyer-2', 'buyer-3', 'buyer-4', 'buyer-5'].map((id) => ({ id, balance: 100_000 })),
    { id: 'short-of-money', balance: 1_000 },
    { id: 'early-bird', balance: 100_000 },
  ],
  products: [
    { sku: 'last-two', price: 10_000, stock: 2 },
    { sku: 'sold-out', price: 5_000, stock: 0 },
    { sku: 'plenty', price: 2_000, stock: 1_000 },
  ],
};

const fixture = worldFixture({ seed, carrierFaults: NO_FAULTS });

describe('order-pay-ship saga paths', () => {
  it('sells the last two units to exactly two of five concurrent buyers, and refunds the other three once each', async () => {
    const { world } = fixture;
    const buyers = ['buyer-1', 'buyer-2', 'buyer-3', 'buyer-4', 'buyer-5'];
    const ids = await Promise.all(
      buyers.map((customerId) => placeOrder(world, { customerId, sku: 'last-two', quantity: 1 })),
    );
    const orders = await waitForFinal(world, ids);

    const completed = orders.filter((o) => o.status === 'COMPLETED');
    const cancelled = orders.filter((o) => o.status === 'CANCELLED');
    expect(completed).toHaveLength(2);
    expect(cancelled).toHaveLength(3);
    expect(await stockOf(world, 'last-two')).toBe(0);
    for (const order of completed) {
      expect(await paymentsOf(world, order.id)).toEqual([{ kind: 'charge', amount: 10_000 }]);
      expect(await stockMovesOf(world, order.id)).toEqual(['reserve']);
      expect(await bookingsOf(world, order.id)).toEqual([{ status: 'booked' }]);
      expect(await balanceOf(world, order.customerId)).toBe(90_000);
    }
    for (const order of cancelled) {
      expect(order.reason).toMatch(/^not reserved: out of stock/);
      // Charged before the stock ran out, so refunded: once, the same amount.
      expect(await paymentsOf(world, order.id)).toEqual([
        { kind: 'charge', amount: 10_000 },
        { kind: 'refund', amount: 10_000 },
      ]);
      expect(await stockMovesOf(world, order.id)).toEqual([]);
      expect(await bookingsOf(world, order.id)).toEqual([]);
      expect(await balanceOf(world, order.customerId)).toBe(100_000);
    }
  }, 90_000);

  it('cancels an order whose payment is declined, leaving the wallet and both ledgers untouched', async () => {
    const { world } = fixture;
    const id = await placeOrder(world, { customerId: 'short-of-money', sku: 'plenty', quantity: 1 });
    const [order] = await waitForFinal(world, [id]);

    expect(order!.status).toBe('CANCELLED');
    expect(order!.reason).toBe('payment declined: insufficient funds');
    expect(order!.saga!.history.map((h) => `${h.step} ${h.phase} ${h.event}`)).toEqual([
      'create-order forward ran',
      'charge-payment forward sent',
      'charge-payment forward failed',
      'create-order compensate ran',
    ]);
    expect(await balanceOf(world, 'short-of-money')).toBe(1_000);
    expect(await paymentsOf(world, id)).toEqual([]);
    expect(await stockMovesOf(world, id)).toEqual([]);
    expect(await stockOf(world, 'plenty')).toBe(1_000);
  }, 60_000);

  it('refunds the charge exactly once when the stock is gone, then cancels the order', async () => {
    const { world } = fixture;
    const id = await placeOrder(world, { customerId: 'early-bird', sku: 'sold-out', quantity: 2 });
    const [order] = await waitForFinal(world, [id]);

    expect(order!.status).toBe('CANCELLED');
    expect(order!.reason).toMatch(/^not reserved: out of stock/);
    expect(order!.saga!.history.map((h) => `${h.step} ${h.phase} ${h.event}`)).toEqual([
      'create-order forward ran',
      'charge-payment forward sent',
      'charge-payment forward succeeded',
      'reserve-stock forward sent',
      'reserve-stock forward failed',
      'charge-payment compensate sent',
      'charge-payment compensate succeeded',
      'create-order compensate ran',
    ]);
    expect(await paymentsOf(world, id)).toEqual([
      { kind: 'charge', amount: 10_000 },
      { kind: 'refund', amount: 10_000 },
    ]);
    expect(await balanceOf(world, 'early-bird')).toBe(100_000);
    expect(await stockMovesOf(world, id)).toEqual([]);
    expect(await bookingsOf(world, id)).toEqual([]);
  }, 60_000);

  it('keeps every invariant of the demo over all the orders above', async () => {
    const results = await checkInvariants(fixture.world.db, seed);
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });

  it('has an invariant checker that notices a charge applied twice', async () => {
    const { world } = fixture;
    // What a consumer without an inbox would do on a redelivered ChargePayment.
    const [charged] = await world.db.payment('payments').where({ kind: 'charge' }).orderBy('seq').limit(1);
    await world.db.payment.transaction(async (trx) => {
      await trx('payments').insert({ ...charged, seq: undefined, at: undefined });
      await trx('wallets').where({ customer_id: charged.customer_id }).decrement('balance', charged.amount);
    });
    const broken = (await checkInvariants(world.db, seed)).filter((r) => !r.ok).map((r) => r.name);
    expect(broken).toEqual(expect.arrayContaining(['no ledger entry is applied twice']));
    expect(broken.some((name) => /charged|refunded/.test(name))).toBe(true);
  });
});
