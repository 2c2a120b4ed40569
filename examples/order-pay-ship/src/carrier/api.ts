import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';
import { field, HttpError, isCount, isText, type Reply, type Route } from '../shared/http.js';
import type { Random } from '../shared/random.js';
import { type CarrierFaults, drawFault, resolveFaults } from './faults.js';

interface ShipmentRow {
  key: string;
  status: 'booked' | 'rejected' | 'cancelled';
  tracking: string | null;
  reason: string | null;
}

const view = (row: ShipmentRow) => ({ key: row.key, status: row.status, tracking: row.tracking, reason: row.reason });

/** booked -> 200 (201 when just created); rejected -> 422; cancelled -> 409 (the key cannot be booked again). */
function answer(row: ShipmentRow, created: boolean): Reply {
  const status = row.status === 'booked' ? (created ? 201 : 200) : row.status === 'rejected' ? 422 : 409;
  return { status, body: view(row) };
}

/**
 * The carrier simulator's API: an external system with its own store, idempotent by
 * the key the client chooses, that misbehaves on purpose (see faults.ts).
 */
export function carrierRoutes(deps: { knex: Knex; random: Random; faults: { current: CarrierFaults } }): Route[] {
  const { knex, random, faults } = deps;

  async function book(body: unknown): Promise<Reply> {
    const key = field(body, 'key', isText, 'a non-empty string (the idempotency key)');
    const orderId = field(body, 'orderId', isText, 'a non-empty string');
    const sku = field(body, 'sku', isText, 'a non-empty string');
    const quantity = field(body, 'quantity', isCount, 'an integer between 1 and 1000');
    const config = faults.current;
    const fault = drawFault(config, random);
    await knex('requests').insert({ key, fault });
    if (fault === 'lost-before-booking') {
      await sleep(config.hangMs);
      return { status: 503, body: { error: 'the request got lost in the carrier (nothing was booked)' } };
    }
    if (fault === 'slow') await sleep(random.int(config.slowMs[0], config.slowMs[1]));
    // Only a new key can be refused; an existing key answers with what it is.
    const refused = fault === 'reject';
    const [created] = await knex('shipments')
      .insert({
        key,
        order_id: orderId,
        sku,
        quantity,
        status: refused ? 'rejected' : 'booked',
        tracking: refused ? null : `TRK-${randomBytes(5).toString('hex').toUpperCase()}`,
        reason: refused ? 'address not serviceable' : null,
      })
      .onConflict('key')
      .ignore()
      .returning('*');
    const row: ShipmentRow = created ?? (await knex('shipments').where({ key }).first());
    if (fault === 'timeout-after-booking') await sleep(config.hangMs);
    return answer(row, created !== undefined);
  }

  return [
    { method: 'POST', path: /^\/shipments\/?$/, handle: async (request) => book(await request.body()) },
    {
      method: 'GET',
      path: /^\/shipments\/([^/]+)$/,
      async handle({ params }) {
        const row: ShipmentRow | undefined = await knex('shipments').where({ key: params[0] }).first();
        if (!row) throw new HttpError(404, `no shipment was ever booked with key ${params[0]}`);
        return { status: 200, body: view(row) };
      },
    },
    {
      method: 'DELETE',
      path: /^\/shipments\/([^/]+)$/,
      async handle({ params }) {
        const key = params[0]!;
        // Cancels a booking, or leaves a tombstone for a key never booked, in one
        // statement: a booking request racing with it either came first (and is
        // cancelled now) or comes later (and finds the key cancelled).
        const { rows } = await knex.raw(
          `insert into shipments (key, status, reason) values (?, 'cancelled', 'cancelled before it was booked')
           on conflict (key) do update set status = 'cancelled', reason = 'cancelled', updated_at = clock_timestamp()
             where shipments.status = 'booked'
           returning *`,
          [key],
        );
        const row: ShipmentRow = rows[0] ?? (await knex('shipments').where({ key }).first());
        return { status: 200, body: view(row) };
      },
    },
    { method: 'GET', path: /^\/faults$/, handle: async () => ({ status: 200, body: faults.current }) },
    {
      method: 'PUT',
      path: /^\/faults$/,
      async handle(request) {
        try {
          faults.current = resolveFaults(await request.body(), faults.current);
        } catch (error) {
          throw new HttpError(400, error instanceof Error ? error.message : String(error));
        }
        return { status: 200, body: faults.current };
      },
    },
    { method: 'GET', path: /^\/health$/, handle: async () => ({ status: 200, body: { ok: true } }) },
  ];
}
