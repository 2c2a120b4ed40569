import type { Knex } from 'knex';
import { identifier, qualified } from './names.js';

/** One knex migration, run by `runMigrations` or by the application's own knex migrations. */
export type Migration = {
  /**
   * Its row in the bookkeeping table, e.g. `eventual.outbox.001_create`: never change it
   * once released, or the migration runs again.
   */
  name: string;
  /** Applies the migration. */
  up(knex: Knex): Promise<void>;
  /** Undoes what `up` did. */
  down(knex: Knex): Promise<void>;
};

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

/** Where a package's one table lives. A name that is not a lower-case SQL identifier throws `InvalidOptionError`. */
export interface TableMigrationOptions {
  /** The table's schema, created if missing. Default `eventual`. */
  schema?: string;
  /** The table's name. Default the package's own (e.g. `sagas`). */
  table?: string;
}

/** A later migration of a package's one table: `<schema>.<table>.<name>`, e.g. `002_trace_context`. */
export interface TableUpgrade {
  /** Its name after the table's, e.g. `002_trace_context`: never change it once released. */
  name: string;
  /** Statements that apply it, in order. */
  up: string[];
  /** Statements that undo it, in order. */
  down: string[];
}

/** A table as `tableMigrations`' callbacks see it. */
type MigratedTable = { qualified: string; name: string; q: (name: string) => string };

/**
 * The migrations of a package that owns one table (`<schema>.<table>.001_create`): the
 * schema if needed, then `create`'s statements in order; `down` drops the table and
 * whatever `drop` lists (its functions). `q(name)` quotes a name in the schema. Later
 * changes are `upgrades`, applied in order after it (a released migration is never edited).
 */
export function tableMigrations(
  options: TableMigrationOptions,
  defaultTable: string,
  create: (table: MigratedTable) => string[],
  drop: (table: MigratedTable) => string[] = () => [],
  upgrades: (table: MigratedTable) => TableUpgrade[] = () => [],
): Knex.MigrationSource<Migration> {
  const schema = identifier('schema', options.schema ?? 'eventual');
  const name = identifier('table', options.table ?? defaultTable);
  const table = { qualified: qualified(schema, name), name, q: (n: string) => qualified(schema, n) };
  const later = upgrades(table).map(
    (upgrade): Migration => ({
      name: `${schema}.${name}.${upgrade.name}`,
      async up(knex) {
        for (const statement of upgrade.up) await knex.raw(statement);
      },
      async down(knex) {
        for (const statement of upgrade.down) await knex.raw(statement);
      },
    }),
  );
  return migrationSource([
    {
      name: `${schema}.${name}.001_create`,
      async up(knex) {
        await knex.raw(`create schema if not exists "${schema}"`);
        for (const statement of create(table)) await knex.raw(statement);
      },
      async down(knex) {
        await knex.raw(`drop table if exists ${table.qualified}`);
        for (const statement of drop(table)) await knex.raw(statement);
      },
    },
    ...later,
  ]);
}
