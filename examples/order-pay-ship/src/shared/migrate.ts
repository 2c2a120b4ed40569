import type { Knex } from 'knex';

export interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
}

/**
 * Runs a service's own business-table migrations with knex's migrator (bookkeeping
 * table `app_migrations`, lock included), next to the eventual tables the libraries
 * migrate themselves.
 */
export async function migrateApp(knex: Knex, migrations: Migration[]): Promise<void> {
  await knex.migrate.latest({
    tableName: 'app_migrations',
    migrationSource: {
      getMigrations: async () => migrations,
      getMigrationName: (m: Migration) => m.name,
      getMigration: async (m: Migration) => ({ up: m.up, down: async () => {} }),
    },
  });
}
