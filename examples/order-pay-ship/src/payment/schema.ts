import type { Knex } from 'knex';
import type { CustomerSeed } from '../shared/demo-data.js';
import { migrateApp } from '../shared/migrate.js';

export async function migratePaymentDatabase(knex: Knex): Promise<void> {
  await migrateApp(knex, [
    {
      name: 'payment.001_create',
      async up(db) {
        await db.raw(`
          create table wallets (
            customer_id text primary key,
            balance bigint not null check (balance >= 0)
          )`);
        // An append-only ledger, deliberately without a unique (order_id, kind): the
        // database would hide a double charge or refund as a constraint error, and
        // the demo's invariant checker is there to prove none ever happens.
        await db.raw(`
          create table payments (
            seq bigserial primary key,
            order_id text not null,
            customer_id text not null,
            kind text not null check (kind in ('charge', 'refund')),
            amount bigint not null check (amount > 0),
            at timestamptz not null default clock_timestamp()
          )`);
        await db.raw('create index payments_order on payments (order_id)');
      },
    },
  ]);
}

/** Idempotent: an existing wallet keeps its balance. */
export async function seedWallets(knex: Knex, customers: CustomerSeed[]): Promise<void> {
  if (customers.length === 0) return;
  await knex('wallets')
    .insert(customers.map((c) => ({ customer_id: c.id, balance: c.balance })))
    .onConflict('customer_id')
    .ignore();
}
