import { identifier, type Migration, runMigrations, tableMigrations } from '@eventual/core';
import type { Knex } from 'knex';

/** Where the inbox table is created; a name that is not a lower-case SQL identifier throws `InvalidOptionError`. */
export interface InboxSchemaOptions {
  /**
   * Schema holding the inbox table. Default `eventual`, the outbox's default: a consumer
   * looks for its inbox in its outbox's schema unless its own `schema` says otherwise.
   */
  schema?: string;
  /** Name of the inbox table. Default `inbox`. */
  table?: string;
}

/**
 * The inbox (Eventuate's "duplicate message detector") as a knex migration source.
 * Use it from your own migrator:
 *   knex.migrate.latest({ migrationSource: inboxMigrations({ schema: 'app' }) })
 * or let `consumer.migrate()` run it with its own bookkeeping table.
 */
export function inboxMigrations(options: InboxSchemaOptions = {}): Knex.MigrationSource<Migration> {
  return tableMigrations(
    options,
    'inbox',
    ({ qualified: inbox, name: table, q }) => [
      // One row per (consumer, message id) that reached this consumer's handler stage:
      //   retrying  - a handler attempt failed and the record waits for the next one
      //               (attempts survive restarts and rebalances);
      //   processed - the handler's transaction committed (the row was written in it);
      //   dead      - dead-lettered, in the same transaction as the message to <topic>.dlq.
      // message_id is text: a record without a message-id header is keyed by
      // '<topic>:<partition>:<offset>', which is stable across redeliveries.
      `create table ${inbox} (
        consumer text not null,
        message_id text not null,
        topic text not null,
        partition integer not null,
        "offset" bigint not null,
        state text not null check (state in ('retrying', 'processed', 'dead')),
        attempts integer not null default 0,
        error text,
        created_at timestamptz not null default now(),
        processed_at timestamptz,
        primary key (consumer, message_id),
        check ((state = 'retrying') = (processed_at is null))
      )`,
      // Retention cleanup walks settled rows of one consumer, oldest first.
      `create index "${table}_settled" on ${inbox} (consumer, processed_at) where processed_at is not null`,
      // Settled rows never change state again: only retrying -> retrying | processed | dead.
      // Every statement in sql/inbox.ts already guards on state = 'retrying'; the
      // trigger makes any other path (a hand-written UPDATE, a bug) fail loudly.
      `create function ${q(`${table}_check_transition`)}() returns trigger language plpgsql as $fn$
      begin
        if new.state is distinct from old.state and old.state <> 'retrying' then
          raise exception using errcode = 'EV002',
            message = format('inbox row (%s, %s) cannot go from %s to %s', old.consumer, old.message_id, old.state, new.state);
        end if;
        return new;
      end
      $fn$`,
      `create trigger "${table}_transition" before update of state on ${inbox}
      for each row execute function ${q(`${table}_check_transition`)}()`,
    ],
    ({ name: table, q }) => [`drop function if exists ${q(`${table}_check_transition`)}()`],
  );
}

/** Runs the inbox migrations with a bookkeeping table of their own, next to the inbox. */
export async function migrateInbox(knex: Knex, options: InboxSchemaOptions = {}): Promise<void> {
  const schema = identifier('schema', options.schema ?? 'eventual');
  const table = identifier('table', options.table ?? 'inbox');
  await runMigrations(knex, schema, `${table}_migrations`, inboxMigrations({ schema, table }));
}
