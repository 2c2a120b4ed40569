import type { Knex } from 'knex';
import { toNumber } from '../shared/database.js';
import type { SeedData } from '../shared/demo-data.js';
import type { ServiceName } from './processes.js';

export interface InvariantResult {
  name: string;
  ok: boolean;
  /** The numbers behind the verdict, or the first offenders. */
  detail: string;
}

interface Order {
  id: string;
  customer_id: string;
  sku: string;
  quantity: number;
  amount: number;
  status: string;
}

interface Entry {
  order_id: string;
  customer_id: string;
  kind: string;
  amount: number;
}

const money = (cents: number) =>
  (cents / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const some = (items: string[], max = 5) =>
  items.slice(0, max).join('; ') + (items.length > max ? `; ... ${items.length - max} more` : '');

function group<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const map = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = map.get(k);
    if (list) list.push(item);
    else map.set(k, [item]);
  }
  return map;
}

/**
 * The example's guarantees, checked by reading every service's database directly
 * (not through the services): the ledgers are append-only, so anything applied twice
 * or lost shows up here.
 */
export async function checkInvariants(
  db: Record<ServiceName, Knex>,
  seed: SeedData,
  placedOrderIds?: string[],
): Promise<InvariantResult[]> {
  const orders: Order[] = (
    await db.order('orders').select('id', 'customer_id', 'sku', 'quantity', 'amount', 'status')
  ).map((o: Order) => ({ ...o, amount: toNumber(o.amount) }));
  const payments: Entry[] = (await db.payment('payments').select('order_id', 'customer_id', 'kind', 'amount')).map(
    (p: Entry) => ({
      ...p,
      amount: toNumber(p.amount),
    }),
  );
  const wallets: Array<{ customer_id: string; balance: string }> = await db.payment('wallets').select();
  const moves: Array<{ order_id: string; sku: string; kind: string; quantity: number }> = await db
    .warehouse('stock_moves')
    .select('order_id', 'sku', 'kind', 'quantity');
  const products: Array<{ sku: string; stock: number }> = await db.warehouse('products').select();
  const bookings: Array<{ key: string; status: string }> = await db.carrier('shipments').select('key', 'status');
  const sagas: Array<{ id: string; status: string }> = await db.order
    .withSchema('eventual')
    .table('sagas')
    .select('id', 'status');

  const byId = new Map(orders.map((o) => [o.id, o]));
  const paymentsOf = group(payments, (p) => p.order_id);
  const movesOf = group(moves, (m) => m.order_id);
  const results: InvariantResult[] = [];
  const check = (name: string, failures: string[], detail: string) =>
    results.push({ name, ok: failures.length === 0, detail: failures.length === 0 ? detail : some(failures) });

  // 1. Every order settled, and none lost.
  {
    const unsettled = orders.filter((o) => o.status !== 'COMPLETED' && o.status !== 'CANCELLED');
    const failures = unsettled.map((o) => `order ${o.id} is ${o.status}`);
    if (placedOrderIds) {
      const missing = placedOrderIds.filter((id) => !byId.has(id));
      failures.push(...missing.map((id) => `order ${id} was placed but is not in the order database`));
    }
    check('every order is COMPLETED or CANCELLED', failures, `${orders.length - unsettled.length}/${orders.length}`);
  }

  // 2. Money: what customers had = what they have + what was charged - what was refunded.
  {
    const initial = new Map(seed.customers.map((c) => [c.id, c.balance]));
    const balance = new Map(wallets.map((w) => [w.customer_id, toNumber(w.balance)]));
    const net = new Map<string, number>();
    for (const p of payments)
      net.set(p.customer_id, (net.get(p.customer_id) ?? 0) + (p.kind === 'charge' ? p.amount : -p.amount));
    const failures: string[] = [];
    for (const [customer, start] of initial) {
      const now = (balance.get(customer) ?? 0) + (net.get(customer) ?? 0);
      if (now !== start)
        failures.push(`${customer}: had ${money(start)}, now balance + charges - refunds = ${money(now)}`);
    }
    const strangers = payments
      .filter((p) => !byId.has(p.order_id))
      .map((p) => `${p.kind} for unknown order ${p.order_id}`);
    failures.push(...strangers);
    const total = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const start = total([...initial.values()]);
    const charges = total(payments.filter((p) => p.kind === 'charge').map((p) => p.amount));
    const refunds = total(payments.filter((p) => p.kind === 'refund').map((p) => p.amount));
    const held = total([...balance.values()]);
    check(
      'money is conserved',
      failures,
      `${money(start)} = wallets ${money(held)} + charges ${money(charges)} - refunds ${money(refunds)}`,
    );
  }

  // 3 and 4. Stock: conserved per product, and never sold beyond what there was.
  {
    const stock = new Map(products.map((p) => [p.sku, p.stock]));
    const conserved: string[] = [];
    const oversold: string[] = [];
    const shipped = new Map<string, number>();
    for (const o of orders) if (o.status === 'COMPLETED') shipped.set(o.sku, (shipped.get(o.sku) ?? 0) + o.quantity);
    let totalStart = 0;
    let totalNow = 0;
    for (const p of seed.products) {
      const reserved = moves.filter((m) => m.sku === p.sku && m.kind === 'reserve').reduce((a, m) => a + m.quantity, 0);
      const released = moves.filter((m) => m.sku === p.sku && m.kind === 'release').reduce((a, m) => a + m.quantity, 0);
      const now = stock.get(p.sku) ?? 0;
      totalStart += p.stock;
      totalNow += now;
      if (now + reserved - released !== p.stock)
        conserved.push(`${p.sku}: had ${p.stock}, now stock + reserved - released = ${now + reserved - released}`);
      if ((shipped.get(p.sku) ?? 0) > p.stock) oversold.push(`${p.sku}: ${shipped.get(p.sku)} sold of ${p.stock}`);
      if (now < 0) oversold.push(`${p.sku}: stock is ${now}`);
    }
    for (const o of orders) {
      const net = (movesOf.get(o.id) ?? []).reduce((a, m) => a + (m.kind === 'reserve' ? m.quantity : -m.quantity), 0);
      const expected = o.status === 'COMPLETED' ? o.quantity : 0;
      if (o.status !== 'PENDING' && net !== expected)
        oversold.push(`order ${o.id} (${o.status}) holds ${net} units, expected ${expected}`);
    }
    check('stock is conserved', conserved, `${totalStart} units = in stock ${totalNow} + reserved - released`);
    const scarce = seed.products
      .filter((p) => p.stock < 100)
      .map((p) => `${p.sku} ${shipped.get(p.sku) ?? 0}/${p.stock}`)
      .join(', ');
    check('nothing is oversold', oversold, `sold/stock: ${scarce || 'no scarce products'}`);
  }

  // 5. Completed orders: charged exactly once the order's amount, never refunded.
  // 6. Cancelled orders: refunded exactly once if (and only if) they were charged.
  {
    const completed: string[] = [];
    const cancelled: string[] = [];
    let refundedOnce = 0;
    for (const o of orders) {
      const entries = paymentsOf.get(o.id) ?? [];
      const charges = entries.filter((e) => e.kind === 'charge');
      const refunds = entries.filter((e) => e.kind === 'refund');
      if (o.status === 'COMPLETED') {
        if (charges.length !== 1 || charges[0]!.amount !== o.amount || refunds.length !== 0)
          completed.push(`order ${o.id}: ${charges.length} charge(s), ${refunds.length} refund(s)`);
      } else if (o.status === 'CANCELLED') {
        if (charges.length > 1 || refunds.length !== charges.length)
          cancelled.push(`order ${o.id}: ${charges.length} charge(s), ${refunds.length} refund(s)`);
        else if (charges.length === 1 && charges[0]!.amount !== refunds[0]!.amount)
          cancelled.push(`order ${o.id}: charged ${charges[0]!.amount}, refunded ${refunds[0]!.amount}`);
        else if (charges.length === 1) refundedOnce += 1;
      }
    }
    const nCompleted = orders.filter((o) => o.status === 'COMPLETED').length;
    check('completed orders are charged once and never refunded', completed, `${nCompleted} orders`);
    check('cancelled orders that were charged are refunded exactly once', cancelled, `${refundedOnce} refunded`);
  }

  // 7. Nothing applied twice: the ledgers have at most one entry per (order, kind).
  {
    const twice = [
      ...[...group(payments, (p) => `${p.order_id} ${p.kind}`)].filter(([, es]) => es.length > 1),
      ...[...group(moves, (m) => `${m.order_id} ${m.kind}`)].filter(([, es]) => es.length > 1),
    ].map(([key, es]) => `${key} x${es.length}`);
    check('no ledger entry is applied twice', twice, `${payments.length} payments, ${moves.length} stock moves`);
  }

  // 8. Shipments: a booking exists for every completed order and for nothing else.
  {
    const failures: string[] = [];
    const booked = new Set(bookings.filter((b) => b.status === 'booked').map((b) => b.key));
    for (const key of booked) {
      const order = byId.get(key);
      if (order?.status !== 'COMPLETED')
        failures.push(`carrier has a booking for ${order?.status ?? 'unknown'} order ${key}`);
    }
    for (const o of orders)
      if (o.status === 'COMPLETED' && !booked.has(o.id)) failures.push(`completed order ${o.id} has no booking`);
    check('nothing ships for a cancelled order', failures, `${booked.size} bookings, all for completed orders`);
  }

  // 9. Every saga finished, the way its order did.
  {
    const expectedFor: Record<string, string> = { COMPLETED: 'completed', CANCELLED: 'compensated' };
    const failures = sagas
      .filter((s) => s.status !== expectedFor[byId.get(s.id)?.status ?? ''])
      .map((s) => `saga ${s.id} is ${s.status}, its order ${byId.get(s.id)?.status ?? 'missing'}`);
    check('every saga finished with its order', failures, `${sagas.length} sagas`);
  }

  // 10. Nothing needed a dead letter, and no outbox message gave up.
  {
    const failures: string[] = [];
    for (const service of ['order', 'payment', 'warehouse'] as const) {
      const [inbox] = await db[service]
        .withSchema('eventual')
        .table('inbox')
        .where({ state: 'dead' })
        .count({ n: '*' });
      const [outbox] = await db[service]
        .withSchema('eventual')
        .table('outbox')
        .where({ state: 'dead' })
        .count({ n: '*' });
      if (Number(inbox?.n) > 0) failures.push(`${service}: ${inbox?.n} dead-lettered message(s)`);
      if (Number(outbox?.n) > 0) failures.push(`${service}: ${outbox?.n} dead outbox message(s)`);
    }
    check('no message was dead-lettered', failures, 'inboxes and outboxes clean');
  }
  return results;
}
