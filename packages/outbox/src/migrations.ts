import { identifier, integer, type Migration, migrationSource, runMigrations } from '@eventual/core';
import type { Knex } from 'knex';

/** Where the outbox tables are created, and how many relay shards they have. */
export interface OutboxSchemaOptions {
  /** Schema holding the outbox tables, created if missing. Default `eventual`. */
  schema?: string;
  /** Name of the messages table; the helper tables get it as prefix (`outbox_leases`...). Default `outbox`. */
  table?: string;
  /**
   * Number of relay shards; messages are spread over them by hash(key). Fixed when the
   * table is created (stored in `<table>_settings`), because moving a key to another
   * shard while it has pending messages could reorder them. Default 32.
   */
  shards?: number;
}

/**
 * The outbox schema as a knex migration source. Use it from your own migrator:
 *   knex.migrate.latest({ migrationSource: outboxMigrations({ schema: 'app' }) })
 * or let `outbox.migrate()` run it with its own bookkeeping table.
 */
export function outboxMigrations(options: OutboxSchemaOptions = {}): Knex.MigrationSource<Migration> {
  const schema = identifier('schema', options.schema ?? 'eventual');
  const table = identifier('table', options.table ?? 'outbox');
  const shards = integer('shards', options.shards ?? 32, 1, 4096);
  const q = (name: string) => `"${schema}"."${name}"`;
  const messages = q(table);
  const migrations: Migration[] = [
    {
      name: `${schema}.${table}.001_create`,
      async up(knex) {
        await knex.raw(`create schema if not exists "${schema}"`);
        await knex.raw(`
          create table ${q(`${table}_settings`)} (
            singleton boolean primary key default true check (singleton),
            shard_count integer not null check (shard_count between 1 and 4096)
          )`);
        await knex.raw(`insert into ${q(`${table}_settings`)} (shard_count) values (${shards})`);
        await knex.raw(`
          create table ${messages} (
            id uuid primary key,
            topic text not null,
            key text not null,
            type text not null,
            -- json, not jsonb: the exact text the producer serialised is what Kafka gets.
            payload json not null,
            headers jsonb not null,
            shard integer not null,
            state text not null check (state in ('prepared', 'pending', 'published', 'cancelled', 'dead')),
            attempts integer not null default 0,
            available_at timestamptz not null default now(),
            last_error text,
            created_at timestamptz not null default now(),
            published_at timestamptz,
            resolved_by text check (resolved_by in ('producer', 'checkback', 'default')),
            check_count integer not null default 0,
            next_check_at timestamptz
          )`);
        // The relay scans pending rows in id order. Partial indexes stay small however
        // many published rows the table keeps, so the claim stays fast with millions.
        await knex.raw(`create index "${table}_pending_id" on ${messages} (id) where state = 'pending'`);
        // Head-of-line check: an earlier pending row of the same key that is backing off.
        await knex.raw(`create index "${table}_pending_key" on ${messages} (key, id) where state = 'pending'`);
        await knex.raw(`create index "${table}_prepared_due" on ${messages} (next_check_at) where state = 'prepared'`);
        await knex.raw(`create index "${table}_published_at" on ${messages} (published_at) where state = 'published'`);
        await knex.raw(`create index "${table}_dead_id" on ${messages} (id) where state = 'dead'`);
        // Leases: relay shards ('relay:shard:N'), relay members ('relay:member:ID') and
        // scheduled jobs ('cron:NAME'). token only ever grows: it is the fencing token.
        await knex.raw(`
          create table ${q(`${table}_leases`)} (
            name text primary key,
            owner text,
            token bigint not null default 0,
            expires_at timestamptz not null default '-infinity',
            last_slot timestamptz
          )`);
        // The state machine, enforced by the database so no code path can break it:
        // prepared -> pending | cancelled; pending -> published | dead; dead -> pending.
        await knex.raw(`
          create function ${q(`${table}_check_transition`)}() returns trigger language plpgsql as $fn$
          begin
            if tg_op = 'INSERT' then
              if new.state not in ('prepared', 'pending') then
                raise exception using errcode = 'EV001',
                  message = format('outbox message %s cannot be inserted as %s (only prepared or pending)', new.id, new.state);
              end if;
            elsif new.state is distinct from old.state and not (
                 (old.state = 'prepared' and new.state in ('pending', 'cancelled'))
              or (old.state = 'pending' and new.state in ('published', 'dead'))
              or (old.state = 'dead' and new.state = 'pending')) then
              raise exception using errcode = 'EV001',
                message = format('outbox message %s cannot go from %s to %s', old.id, old.state, new.state);
            end if;
            return new;
          end
          $fn$`);
        await knex.raw(`
          create trigger "${table}_transition" before insert or update of state on ${messages}
          for each row execute function ${q(`${table}_check_transition`)}()`);
      },
      async down(knex) {
        await knex.raw(`drop table if exists ${messages}`);
        await knex.raw(`drop function if exists ${q(`${table}_check_transition`)}()`);
        await knex.raw(`drop table if exists ${q(`${table}_leases`)}`);
        await knex.raw(`drop table if exists ${q(`${table}_settings`)}`);
      },
    },
    {
      name: `${schema}.${table}.002_pending_available`,
      async up(knex) {
        // Head-of-line check: the pending rows that are backing off (available_at in
        // the future) by a range scan, instead of a whole-table scan or a probe per
        // pending row on every claim (see sql/claim.ts).
        await knex.raw(
          `create index "${table}_pending_available" on ${messages} (available_at) where state = 'pending'`,
        );
      },
      async down(knex) {
        await knex.raw(`drop index if exists ${q(`${table}_pending_available`)}`);
      },
    },
  ];
  return migrationSource(migrations);
}

/** Runs the outbox migrations with a bookkeeping table of their own, next to the outbox. */
export async function migrateOutbox(knex: Knex, options: OutboxSchemaOptions = {}): Promise<void> {
  const schema = identifier('schema', options.schema ?? 'eventual');
  const table = identifier('table', options.table ?? 'outbox');
  await runMigrations(knex, schema, `${table}_migrations`, outboxMigrations(options));
}
