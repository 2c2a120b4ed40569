import { waitUntil } from '@eventual/devstack';
import { describe, expect, it } from 'vitest';
import { type CarrierFaults, NO_FAULTS } from '../src/carrier/faults.js';
import { checkInvariants } from '../src/demo/invariants.js';
import type { World } from '../src/demo/world.js';
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
  customers: [{ id: 'shopper', balance: 1_000_000 }],
  products: [{ sku: 'parcel', price: 1_000, stock: 100 }],
};

// The warehouse waits up to 5 s for the carrier, but its check-back asks after 1 s:
// the check-back can then overtake a slow booking, which is the race under test. A
// hanging carrier answers after 6 s, when the warehouse has already given up.
const fixture = worldFixture({
  seed,
  carrierFaults: { ...NO_FAULTS, hangMs: 6_000 },
  timing: { shipDeadlineMs: 8_000, carrierTimeoutMs: 5_000, checkAfterMs: 1_000 },
});

async function setFaults(world: World, faults: Partial<CarrierFaults>): Promise<void> {
  const response = await fetch(`${world.carrierUrl}/faults`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...NO_FAULTS, hangMs: 6_000, ...faults }),
  });
  expect(response.status).toBe(200);
}

/** The warehouse's ShipOrder replies for one order, with how each prepared one was resolved. */
async function shipReplies(world: World, orderId: string) {
  return world.db.warehouse
    .withSchema('eventual')
    .table('outbox')
    .where({ key: orderId, type: 'SagaReply' })
    .whereRaw(`headers->>'saga-step' = '3'`)
    .orderBy('id')
    .select('state', 'resolved_by', 'headers');
}

const carrierRequests = async (world: World, orderId: string) =>
  (await world.db.carrier('requests').where({ key: orderId }).orderBy('seq').select('fault')).map(
    (r: { fault: string }) => r.fault,
  );

describe('shipping through the carrier (prepared reply + check-back)', () => {
  it('completes an order whose booking timed out after the carrier booked it: the check-back asks the carrier and commits the reply', async () => {
    const { world } = fixture;
    await setFaults(world, { timeoutAfterBooking: 1 });
    const id = await placeOrder(world, { customerId: 'shopper', sku: 'parcel', quantity: 1 });
    const [order] = await waitForFinal(world, [id]);

    expect(order!.status).toBe('COMPLETED');
    expect(await bookingsOf(world, id)).toEqual([{ status: 'booked' }]);
    expect(await carrierRequests(world, id)).toEqual(['timeout-after-booking']);
    // The warehouse never heard back; the check-back found the booking and committed the reply.
    expect((await shipReplies(world, id)).map((r) => [r.state, r.resolved_by])).toEqual([['published', 'checkback']]);
    expect(await paymentsOf(world, id)).toEqual([{ kind: 'charge', amount: 1_000 }]);
  }, 60_000);

  it('books on the re-sent ShipOrder when the first request was lost: the check-back rolls back, the saga deadline re-sends', async () => {
    const { world } = fixture;
    await setFaults(world, { lostBeforeBooking: 1 });
    const id = await placeOrder(world, { customerId: 'shopper', sku: 'parcel', quantity: 1 });
    await waitUntil(
      'the first booking request',
      async () => ((await carrierRequests(world, id)).length > 0 ? true : undefined),
      {
        timeoutMs: 30_000,
        intervalMs: 50,
      },
    );
    await setFaults(world, {});
    const [order] = await waitForFinal(world, [id]);

    expect(order!.status).toBe('COMPLETED');
    expect(await carrierRequests(world, id)).toEqual(['lost-before-booking', 'none']);
    expect(await bookingsOf(world, id)).toEqual([{ status: 'booked' }]);
    expect((await shipReplies(world, id)).map((r) => [r.state, r.resolved_by])).toEqual([
      ['cancelled', 'checkback'],
      ['published', 'producer'],
    ]);
    const ship = order!.saga!.history.filter((h) => h.step === 'ship').map((h) => h.event);
    expect(ship).toEqual(['sent', 'timed-out', 'sent', 'succeeded']);
  }, 60_000);

  it('still completes when the booking lands after the check-back rolled the reply back: the late commit is refused and a fresh reply sent', async () => {
    const { world } = fixture;
    await setFaults(world, { slow: 1, slowMs: [3_500, 3_500] });
    const id = await placeOrder(world, { customerId: 'shopper', sku: 'parcel', quantity: 1 });
    const [order] = await waitForFinal(world, [id]);

    expect(order!.status).toBe('COMPLETED');
    expect(await carrierRequests(world, id)).toEqual(['slow']);
    expect(await bookingsOf(world, id)).toEqual([{ status: 'booked' }]);
    // The prepared reply was rolled back by the check-back (404 at that moment); the
    // booking then succeeded, commit() threw PreparedMessageResolvedError, and the
    // warehouse enqueued a new success reply instead of waiting for the deadline.
    expect((await shipReplies(world, id)).map((r) => [r.state, r.resolved_by])).toEqual([
      ['cancelled', 'checkback'],
      ['published', null],
    ]);
    const ship = order!.saga!.history.filter((h) => h.step === 'ship').map((h) => h.event);
    expect(ship).toEqual(['sent', 'succeeded']);
  }, 60_000);

  it('refunds, releases the stock and cancels when the carrier refuses the shipment', async () => {
    const { world } = fixture;
    await setFaults(world, { reject: 1 });
    const before = await balanceOf(world, 'shopper');
    const stockBefore = await stockOf(world, 'parcel');
    const id = await placeOrder(world, { customerId: 'shopper', sku: 'parcel', quantity: 3 });
    const [order] = await waitForFinal(world, [id]);

    expect(order!.status).toBe('CANCELLED');
    expect(order!.reason).toBe('not shipped: carrier refused: address not serviceable');
    expect(await bookingsOf(world, id)).toEqual([{ status: 'rejected' }]);
    expect(await paymentsOf(world, id)).toEqual([
      { kind: 'charge', amount: 3_000 },
      { kind: 'refund', amount: 3_000 },
    ]);
    expect(await stockMovesOf(world, id)).toEqual(['reserve', 'release']);
    expect(await balanceOf(world, 'shopper')).toBe(before);
    expect(await stockOf(world, 'parcel')).toBe(stockBefore);
  }, 60_000);

  it('gives up on a carrier that never books: cancels the key at the carrier, releases, refunds and cancels the order', async () => {
    const { world } = fixture;
    await setFaults(world, { lostBeforeBooking: 1 });
    const id = await placeOrder(world, { customerId: 'shopper', sku: 'parcel', quantity: 1 });
    const [order] = await waitForFinal(world, [id], 90_000);

    expect(order!.status).toBe('CANCELLED');
    expect(await carrierRequests(world, id)).toEqual([
      'lost-before-booking',
      'lost-before-booking',
      'lost-before-booking',
    ]);
    const ship = order!.saga!.history.filter((h) => h.step === 'ship').map((h) => `${h.phase} ${h.event}`);
    expect(ship).toEqual([
      'forward sent',
      'forward timed-out',
      'forward sent',
      'forward timed-out',
      'forward sent',
      'forward timed-out',
      'compensate sent',
      'compensate succeeded',
    ]);
    // CancelShipment left the key cancelled at the carrier: a booking request still in
    // flight (or arriving late) can no longer book it.
    expect(await bookingsOf(world, id)).toEqual([{ status: 'cancelled' }]);
    await setFaults(world, {});
    const late = await fetch(`${world.carrierUrl}/shipments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: id, orderId: id, sku: 'parcel', quantity: 1 }),
    });
    expect(late.status).toBe(409);
    expect(await paymentsOf(world, id)).toEqual([
      { kind: 'charge', amount: 1_000 },
      { kind: 'refund', amount: 1_000 },
    ]);
    expect(await stockMovesOf(world, id)).toEqual(['reserve', 'release']);
  }, 120_000);

  it('keeps every invariant of the demo over all the orders above', async () => {
    await setFaults(fixture.world, {});
    const results = await checkInvariants(fixture.world.db, seed);
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });
});
