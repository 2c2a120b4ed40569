// Building blocks shared by eventual's own packages (the consumer, the saga
// orchestrator): option rules, the statement runner, migration helpers. Not part of
// the public API; their shape may change between minor versions.
export { type Migration, migrationSource, runMigrations } from './migrations.js';
export { type Statement, type StatementRunner, statementRunner } from './sql/statement.js';
export * from './validate.js';
