import { randomUUID } from 'node:crypto';
import type { SagaDefinition, SagaOrchestrator } from '@eventual/saga';
import type { Knex } from 'knex';
import { toNumber } from '../shared/database.js';
import { field, HttpError, isCount, isText, type Route } from '../shared/http.js';
import type { OrderData } from './saga.js';
import { ORDER_STATUSES, type OrderStatus } from './schema.js';

interface OrderRow {
  id: string;
  customer_id: string;
  sku: string;
  quantity: number;
  amount: string;
  status: OrderStatus;
  reason: string | null;
  created_at: Date;
  updated_at: Date;
}

export interface OrderView {
  id: string;
  customerId: string;
  sku: string;
  quantity: number;
  amount: number;
  status: OrderStatus;
  reason: string | null;
  createdAt: string;
  updatedAt: string;
}

const view = (row: OrderRow): OrderView => ({
  id: row.id,
  customerId: row.customer_id,
  sku: row.sku,
  quantity: row.quantity,
  amount: toNumber(row.amount),
  status: row.status,
  reason: row.reason,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const isUuid = (v: unknown): v is string => typeof v === 'string' && UUID.test(v);

export function orderRoutes(deps: {
  knex: Knex;
  orchestrator: SagaOrchestrator;
  saga: SagaDefinition<OrderData>;
}): Route[] {
  const { knex, orchestrator, saga } = deps;

  /**
   * Places an order: the order row and the saga (whose first command, ChargePayment,
   * goes into the outbox) commit in one transaction, or neither does. The client may
   * send its own `id` to retry safely: the same id returns the order already placed.
   */
  async function placeOrder(body: unknown) {
    const id =
      (body as { id?: unknown })?.id === undefined ? randomUUID() : field(body, 'id', isUuid, 'a UUID').toLowerCase();
    const customerId = field(body, 'customerId', isText, 'a non-empty string');
    const sku = field(body, 'sku', isText, 'a non-empty string');
    const quantity = field(body, 'quantity', isCount, 'an integer between 1 and 1000');
    return knex.transaction(async (trx) => {
      const product = await trx('catalog').where({ sku }).first('price');
      if (!product) throw new HttpError(400, `sku '${sku}' is not in the catalogue`);
      const amount = toNumber(product.price) * quantity;
      const [inserted] = await trx('orders')
        .insert({ id, customer_id: customerId, sku, quantity, amount, status: 'PENDING' })
        .onConflict('id')
        .ignore()
        .returning('*');
      if (!inserted) {
        const existing: OrderRow = await trx('orders').where({ id }).first();
        if (existing.customer_id !== customerId || existing.sku !== sku || existing.quantity !== quantity)
          throw new HttpError(409, `order ${id} exists with different contents`);
        return { status: 200, body: view(existing) };
      }
      await orchestrator.start(trx, saga, {
        id,
        data: { orderId: id, customerId, sku, quantity, amount, failure: null },
      });
      return { status: 201, body: view(inserted as OrderRow) };
    });
  }

  return [
    { method: 'POST', path: /^\/orders\/?$/, handle: async (request) => placeOrder(await request.body()) },
    {
      method: 'GET',
      path: /^\/orders\/?$/,
      async handle({ query }) {
        const status = query.get('status');
        if (status !== null && !ORDER_STATUSES.includes(status as OrderStatus))
          throw new HttpError(400, `status must be one of ${ORDER_STATUSES.join(', ')}`);
        const limit = Number(query.get('limit') ?? 100);
        if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
          throw new HttpError(400, 'limit must be an integer between 1 and 10000');
        const rows: OrderRow[] = await knex('orders')
          .modify((q) => (status ? q.where({ status }) : q))
          .orderBy('created_at')
          .limit(limit);
        return { status: 200, body: { orders: rows.map(view) } };
      },
    },
    {
      method: 'GET',
      path: /^\/orders\/([^/]+)$/,
      async handle({ params }) {
        const id = params[0]!.toLowerCase();
        if (!UUID.test(id)) throw new HttpError(400, 'order id must be a UUID');
        const row: OrderRow | undefined = await knex('orders').where({ id }).first();
        if (!row) throw new HttpError(404, `no order ${id}`);
        const instance = await orchestrator.get(id);
        const sagaView = instance && {
          status: instance.status,
          step: instance.step,
          lastError: instance.lastError,
          history: instance.history,
        };
        return { status: 200, body: { ...view(row), saga: sagaView ?? null } };
      },
    },
    {
      method: 'GET',
      path: /^\/stats$/,
      async handle() {
        const rows: Array<{ status: OrderStatus; count: number }> = await knex('orders')
          .select('status')
          .count<Array<{ status: OrderStatus; count: number }>>({ count: '*' })
          .groupBy('status');
        const orders = { PENDING: 0, COMPLETED: 0, CANCELLED: 0 } as Record<OrderStatus, number>;
        for (const r of rows) orders[r.status] = Number(r.count);
        const total = orders.PENDING + orders.COMPLETED + orders.CANCELLED;
        return { status: 200, body: { orders, total, sagas: await orchestrator.countByStatus() } };
      },
    },
    { method: 'GET', path: /^\/health$/, handle: async () => ({ status: 200, body: { ok: true } }) },
  ];
}
