import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@eventual/core';
import { createDatabase, type LocalPostgres, startLocalPostgres } from '@eventual/devstack';
import knexFactory, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresLock, LockLostError, type PostgresLockManager } from '../src/index.js';

// A server of its own: restarting the shared one would break the other test files.
let server: LocalPostgres;
let knex: Knex;
const managers: PostgresLockManager[] = [];

beforeAll(async () => {
  server = await startLocalPostgres(join(await mkdtemp(join(tmpdir(), 'eventual-lock-restart-')), 'pg.log'));
  knex = knexFactory({
    client: 'pg',
    connection: await createDatabase(server.adminUrl, 'lock'),
    pool: { min: 0, max: 10 },
  });
  await createPostgresLock({ knex }).migrate();
});
afterAll(async () => {
  for (const m of managers) await m.stop().catch(() => {});
  await knex?.destroy();
  await server?.stop();
});

async function manager(): Promise<PostgresLockManager> {
  const m = createPostgresLock({ knex, pollIntervalMs: 200, logger: silentLogger });
  managers.push(m);
  await m.start();
  return m;
}

/** Runs `work` in a transaction, repeating while the server is still coming back. */
async function whenBack<T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await knex.transaction(work);
    } catch (error) {
      if (attempt >= 50 || error instanceof LockLostError) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** `a` holds `name` under `ttlMs`; `b` waits for it (queued when this resolves); `granted` records when. */
async function holderAndWaiter(name: string, ttlMs: number) {
  const [a, b] = [await manager(), await manager()];
  const held = await a.acquire(name, { ttlMs });
  const state: { grantedAt?: number } = {};
  const queued = new Promise<void>((resolve) => b.on('lock:waiting', () => resolve()));
  const waiting = b.acquire(name, { ttlMs: 10_000 }).then((h) => {
    state.grantedAt = performance.now();
    return h;
  });
  await queued;
  return { a, held, waiting, state };
}

describe('PostgreSQL restarted while a lock is held', () => {
  it('a holder whose lease outlives the restart keeps it, and the waiter gets it only at its release', async () => {
    const { held, waiting, state } = await holderAndWaiter('restart:kept', 10_000);
    await server.restart('fast');
    // Renewed across the restart: still current on the server, inside a transaction.
    await whenBack((trx) => held.guard(trx));
    expect(held.signal.aborted).toBe(false);
    expect(state.grantedAt).toBeUndefined();
    const releasedAt = performance.now();
    await held.release();
    const next = await waiting;
    expect(state.grantedAt).toBeGreaterThanOrEqual(releasedAt);
    expect(next.token).toBeGreaterThan(held.token);
    await next.release();
  });

  it('a holder cut off past its ttl learns it lost the lock before anyone else is granted it, and its guard is refused', async () => {
    const { a, held, waiting, state } = await holderAndWaiter('restart:lost', 1_500);
    let lostAt: number | undefined;
    held.signal.addEventListener('abort', () => {
      lostAt = performance.now();
    });
    await server.halt('immediate');
    await expect.poll(() => held.signal.aborted, { timeout: 10_000 }).toBe(true);
    expect(held.signal.reason).toBeInstanceOf(LockLostError);
    await server.resume();
    const next = await waiting;
    // Nobody held it twice: the old holder knew it had lost it before the new grant.
    expect(lostAt).toBeDefined();
    expect(state.grantedAt).toBeGreaterThan(lostAt!);
    expect(next.token).toBeGreaterThan(held.token);
    await expect(whenBack((trx) => held.guard(trx))).rejects.toBeInstanceOf(LockLostError);
    await expect(whenBack((trx) => a.guard(trx, 'restart:lost', held.token))).rejects.toBeInstanceOf(LockLostError);
    await whenBack((trx) => next.guard(trx));
    await next.release();
  });
});
