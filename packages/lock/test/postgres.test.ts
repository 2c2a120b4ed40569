import { fileURLToPath } from 'node:url';
import { silentLogger } from '@eventual/core';
import { testServices } from '@eventual/devstack/testing';
import knexFactory from 'knex';
import { createPostgresLock, type PostgresLockHandle } from '../src/index.js';
import { lockContract } from './contract/suite.js';

const services = testServices();
const worker = fileURLToPath(new URL('./fixtures/postgres-worker.ts', import.meta.url));

lockContract<PostgresLockHandle>('PostgreSQL', async () => {
  const url = await services.createDatabase('lock');
  const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 20 } });
  await createPostgresLock({ knex }).migrate();
  return {
    manager: ({ pollIntervalMs }) => createPostgresLock({ knex, pollIntervalMs, logger: silentLogger }),
    worker: { script: worker, args: [url] },
    storage: { url, knex },
    guard: (handle, trx) => handle.guard(trx),
  };
});
