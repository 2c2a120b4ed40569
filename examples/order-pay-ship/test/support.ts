import { randomUUID } from 'node:crypto';
import { waitUntil } from '@eventual/devstack';
import { testServices } from '@eventual/devstack/testing';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import type { RunningInfrastructure } from '../src/demo/world.js';
import { startWorld, type World, type WorldOptions } from '../src/demo/world.js';
import type { OrderView } from '../src/order/api.js';

/** The PostgreSQL server and Kafka broker of the vitest globalSetup: no second devstack. */
export function infrastructure(): RunningInfrastructure {
  const services = testServices();
  return { adminDatabaseUrl: services.adminDatabaseUrl, kafkaBrokers: services.kafkaBrokers };
}

/**
 * The example's services for one test file, as real processes on real PostgreSQL and
 * Kafka: started before the file's tests, stopped after them (logs kept if a test failed).
 */
export function worldFixture(options: Omit<WorldOptions, 'infrastructure'>) {
  let world: World | undefined;
  let failed = false;
  beforeAll(async () => {
    world = await startWorld({ ...options, infrastructure: infrastructure() });
  }, 180_000);
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      failed = true;
    });
  });
  afterAll(async () => {
    await world?.stop({ keepLogs: failed });
    if (failed && world) process.stderr.write(`service logs kept in ${world.logDir}\n`);
  }, 60_000);
  return {
    get world(): World {
      if (!world) throw new Error('the world is not started');
      return world;
    },
  };
}

export async function placeOrder(
  world: World,
  order: { customerId: string; sku: string; quantity: number },
): Promise<string> {
  const id = randomUUID();
  const response = await fetch(`${world.orderUrl}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id, ...order }),
  });
  if (response.status !== 201) throw new Error(`POST /orders answered ${response.status}: ${await response.text()}`);
  return id;
}

export type OrderDetails = OrderView & {
  saga: { status: string; step: string; history: Array<{ step: string; phase: string; event: string }> } | null;
};

export async function getOrder(world: World, id: string): Promise<OrderDetails> {
  const response = await fetch(`${world.orderUrl}/orders/${id}`);
  if (response.status !== 200) throw new Error(`GET /orders/${id} answered ${response.status}`);
  return (await response.json()) as OrderDetails;
}

/** Waits until every order is COMPLETED or CANCELLED and its saga has finished. */
export async function waitForFinal(world: World, ids: string[], timeoutMs = 60_000): Promise<OrderDetails[]> {
  return waitUntil(
    `orders ${ids.join(', ')} to settle`,
    async () => {
      const orders = await Promise.all(ids.map((id) => getOrder(world, id)));
      const done = orders.every(
        (o) => o.status !== 'PENDING' && (o.saga?.status === 'completed' || o.saga?.status === 'compensated'),
      );
      return done ? orders : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
}

/** One customer's ledger, as the payment service recorded it. */
export async function paymentsOf(world: World, orderId: string): Promise<Array<{ kind: string; amount: number }>> {
  const rows = await world.db.payment('payments').where({ order_id: orderId }).orderBy('seq').select('kind', 'amount');
  return rows.map((r: { kind: string; amount: string }) => ({ kind: r.kind, amount: Number(r.amount) }));
}

export async function balanceOf(world: World, customerId: string): Promise<number> {
  const row = await world.db.payment('wallets').where({ customer_id: customerId }).first('balance');
  return Number(row.balance);
}

export async function stockOf(world: World, sku: string): Promise<number> {
  const row = await world.db.warehouse('products').where({ sku }).first('stock');
  return row.stock;
}

export async function stockMovesOf(world: World, orderId: string): Promise<string[]> {
  const rows = await world.db.warehouse('stock_moves').where({ order_id: orderId }).orderBy('seq').select('kind');
  return rows.map((r: { kind: string }) => r.kind);
}

export async function bookingsOf(world: World, orderId: string): Promise<Array<{ status: string }>> {
  return world.db.carrier('shipments').where({ key: orderId }).select('status');
}
