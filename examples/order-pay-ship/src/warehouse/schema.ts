import type { Knex } from 'knex';
import type { ProductSeed } from '../shared/demo-data.js';
import { migrateApp } from '../shared/migrate.js';

export async function migrateWarehouseDatabase(knex: Knex): Promise<void> {
  await migrateApp(knex, [
    {
      name: 'warehouse.001_create',
      async up(db) {
        await db.raw(`
          create table products (
            sku text primary key,
            stock integer not null check (stock >= 0)
          )`);
        // Append-only, no unique (order_id, kind), like the payments ledger: the
        // invariant checker counts entries per order to prove nothing is applied twice.
        await db.raw(`
          create table stock_moves (
            seq bigserial primary key,
            order_id text not null,
            sku text not null,
            kind text not null check (kind in ('reserve', 'release')),
            quantity integer not null check (quantity > 0),
            at timestamptz not null default clock_timestamp()
          )`);
        await db.raw('create index stock_moves_order on stock_moves (order_id)');
        // What the warehouse knows of each order's shipment. The carrier's answer is
        // the truth; this row is the warehouse's own view of it, and stops a late
        // ShipOrder from booking anything once the shipment was cancelled.
        await db.raw(`
          create table shipments (
            order_id text primary key,
            saga_id text not null,
            status text not null check (status in ('requested', 'booked', 'rejected', 'cancelled')),
            requests integer not null default 0,
            reason text,
            updated_at timestamptz not null default clock_timestamp()
          )`);
      },
    },
  ]);
}

/** Idempotent: an existing product keeps its stock. */
export async function seedProducts(knex: Knex, products: ProductSeed[]): Promise<void> {
  if (products.length === 0) return;
  await knex('products')
    .insert(products.map((p) => ({ sku: p.sku, stock: p.stock })))
    .onConflict('sku')
    .ignore();
}
