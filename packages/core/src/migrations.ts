import type { Knex } from 'knex';

export type Migration = { name: string; up(knex: Knex): Promise<void>; down(knex: Knex): Promise<void> };

/** A knex migration source over a list of migrations (what knex.migrate.latest takes). */
export function migrationSource(migrations: Migration[]): Knex.MigrationSource<Migration> {
  return {
    getMigrations: async () => migrations,
    getMigrationName: (migration) => migration.name,
    getMigration: async (migration) => migration,
  };
}

/**
 * Runs a migration source with a bookkeeping table of its own in `schema`, so the
 * library's migrations never mix with the application's knex_migrations.
 */
export async function runMigrations(
  knex: Knex,
  schema: string,
  bookkeepingTable: string,
  source: Knex.MigrationSource<Migration>,
): Promise<void> {
  await knex.raw(`create schema if not exists "${schema}"`);
  await knex.migrate.latest({ migrationSource: source, schemaName: schema, tableName: bookkeepingTable });
}
