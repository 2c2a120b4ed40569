import type { Knex } from 'knex';
import { migrateApp } from '../shared/migrate.js';

export async function migrateCarrierDatabase(knex: Knex): Promise<void> {
  await migrateApp(knex, [
    {
      name: 'carrier.001_create',
      async up(db) {
        // One row per idempotency key: booking twice with the same key returns the same
        // shipment; a cancelled key stays cancelled (a late booking attempt is refused).
        await db.raw(`
          create table shipments (
            key text primary key,
            order_id text,
            sku text,
            quantity integer,
            status text not null check (status in ('booked', 'rejected', 'cancelled')),
            tracking text,
            reason text,
            created_at timestamptz not null default clock_timestamp(),
            updated_at timestamptz not null default clock_timestamp()
          )`);
        // Every booking request and the fault injected into it, for the demo's summary.
        await db.raw(`
          create table requests (
            seq bigserial primary key,
            key text not null,
            fault text not null,
            at timestamptz not null default clock_timestamp()
          )`);
      },
    },
  ]);
}
