import type { Knex } from 'knex';
import type { ProductSeed } from '../shared/demo-data.js';
import { migrateApp } from '../shared/migrate.js';

export const ORDER_STATUSES = ['PENDING', 'COMPLETED', 'CANCELLED'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

export async function migrateOrderDatabase(knex: Knex): Promise<void> {
  await migrateApp(knex, [
    {
      name: 'order.001_create',
      async up(db) {
        // The order service's price list: an order's amount is fixed when it is placed.
        await db.raw(`
          create table catalog (
            sku text primary key,
            price bigint not null check (price > 0)
          )`);
        await db.raw(`
          create table orders (
            id uuid primary key,
            customer_id text not null,
            sku text not null references catalog (sku),
            quantity integer not null check (quantity > 0),
            amount bigint not null check (amount > 0),
            status text not null check (status in ('PENDING', 'COMPLETED', 'CANCELLED')),
            reason text,
            created_at timestamptz not null default clock_timestamp(),
            updated_at timestamptz not null default clock_timestamp()
          )`);
        await db.raw('create index orders_status on orders (status, created_at)');
      },
    },
  ]);
}

/** Idempotent: a product already in the catalogue keeps its price. */
export async function seedCatalog(knex: Knex, products: ProductSeed[]): Promise<void> {
  if (products.length === 0) return;
  await knex('catalog')
    .insert(products.map((p) => ({ sku: p.sku, price: p.price })))
    .onConflict('sku')
    .ignore();
}
