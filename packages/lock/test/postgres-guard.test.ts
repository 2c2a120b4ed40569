import { InvalidOptionError, SchemaNotReadyError, silentLogger } from '@eventual/core';
import { testServices } from '@eventual/devstack/testing';
import knexFactory, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresLock, LockLostError, type PostgresLockManager } from '../src/index.js';
import { freeze } from './contract/bad-input.js';

const services = testServices();
let knex: Knex;
let locks: PostgresLockManager;

beforeAll(async () => {
  knex = knexFactory({
    client: 'pg',
    connection: await services.createDatabase('lockguard'),
    pool: { min: 0, max: 10 },
  });
  locks = createPostgresLock({ knex, logger: silentLogger });
  await locks.migrate();
  await locks.start();
  await knex.raw(
    'create table ledger (id serial primary key, note text not null, at timestamptz not null default clock_timestamp())',
  );
});
const others: PostgresLockManager[] = [];
afterAll(async () => {
  for (const other of others) await other.stop();
  await locks?.stop();
  await knex?.destroy();
});

/** Everything the lock tables hold, to show that a refused call changed nothing. */
async function lockState() {
  const [locksRows, holders, waiters] = await Promise.all([
    knex('eventual.locks').orderBy('name'),
    knex('eventual.locks_holders').select('name', 'owner', 'token', 'mode', 'requests', 'expires_at').orderBy('name'),
    knex('eventual.locks_waiters').orderBy('id'),
  ]);
  return { locksRows, holders, waiters };
}

describe('PostgreSQL guard(trx)', () => {
  it('commits the guarded write with the check, and rolls back a write guarded by a token that is no longer current', async () => {
    const first = await locks.acquire('guard:ledger', { ttlMs: 30_000 });
    await knex.transaction(async (trx) => {
      await first.guard(trx);
      await trx('ledger').insert({ note: 'first' });
    });
    const stale = first.token;
    await first.release();
    const second = await locks.acquire('guard:ledger', { ttlMs: 30_000 });
    // A token that travelled (to another process) is checked the same way.
    const refused = await knex
      .transaction(async (trx) => {
        await trx('ledger').insert({ note: 'stale' });
        await locks.guard(trx, 'guard:ledger', stale);
      })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LockLostError);
    expect((refused as LockLostError).code).toBe('lock_lost');
    await knex.transaction((trx) => locks.guard(trx, 'guard:ledger', second.token));
    expect((await knex('ledger').orderBy('id')).map((r) => r.note)).toEqual(['first']);
    await second.release();
  });

  it('makes a newer holder wait for a guarded transaction still open, so the old write commits before the next grant', async () => {
    const name = 'guard:ordering';
    const held = await locks.acquire(name, { ttlMs: 500 });
    let commit: () => void = () => {};
    const open = new Promise<void>((resolve) => {
      commit = resolve;
    });
    let guarding: () => void = () => {};
    const guarded = new Promise<void>((resolve) => {
      guarding = resolve;
    });
    const writing = knex.transaction(async (trx) => {
      await held.guard(trx);
      guarding();
      await open;
      await trx('ledger').insert({ note: 'guarded' });
    });
    await guarded;
    const other = createPostgresLock({ knex, logger: silentLogger, pollIntervalMs: 100 });
    others.push(other);
    await other.start();
    const next = other.acquire(name, { ttlMs: 30_000 });
    freeze(1_200); // the holder's lease expires unrenewed while its guarded transaction is open
    await expect.poll(() => held.signal.aborted).toBe(true);
    // The takeover has to delete the expired lease, and waits for the guarded transaction.
    await expect
      .poll(async () => {
        const { rows } = await knex.raw(
          "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%locks_acquire%'",
        );
        return rows[0].n;
      })
      .toBe(1);
    commit();
    await writing;
    const granted = await next;
    // On the server's clock: the guarded write, then the grant.
    const [write] = await knex('ledger').where({ note: 'guarded' });
    const [lease] = await knex('eventual.locks_holders').where({ name, token: granted.token.toString() });
    expect(write.at.getTime()).toBeLessThan(lease.acquired_at.getTime());
    await granted.release();
  });

  it('refuses a release inside the transaction the handle guards (it would wait for itself), and releases after it', async () => {
    const held = await locks.acquire('guard:release-inside', { ttlMs: 30_000 });
    const refused = await knex.transaction(async (trx) => {
      await held.guard(trx);
      await trx('ledger').insert({ note: 'inside' });
      return held.release().catch((e: unknown) => e);
    });
    expect(refused).toBeInstanceOf(InvalidOptionError);
    expect(held.held).toBe(true);
    await held.release();
    expect(held.held).toBe(false);
    const next = await locks.tryAcquire('guard:release-inside', { ttlMs: 30_000 });
    expect(next).toBeDefined();
    await next?.release();
  });

  it('needs a transaction, and changes nothing when given something else', async () => {
    const held = await locks.acquire('guard:trx', { ttlMs: 30_000 });
    const before = await lockState();
    await expect(held.guard(knex as unknown as Knex.Transaction)).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(locks.acquire('', { ttlMs: 0 })).rejects.toBeInstanceOf(InvalidOptionError);
    expect(await lockState()).toEqual(before);
    await held.release();
  });

  it('says how to create the tables when they are missing', async () => {
    const missing = createPostgresLock({ knex, schema: 'nowhere', logger: silentLogger });
    await missing.start();
    const error = await missing.tryAcquire('x', { ttlMs: 1_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaNotReadyError);
    expect((error as Error).message).toContain('locks.migrate()');
    await missing.stop();
  });
});
