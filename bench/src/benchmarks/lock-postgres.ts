import { silentLogger } from '@eventual/core';
import { createPostgresLock, type PostgresLockManager } from '@eventual/lock';
import type { Knex } from 'knex';
import { connect, sleep } from '../fixtures.js';
import { type Benchmark, figure, type Sample } from '../harness.js';
import { round, summariseLatencies } from '../stats.js';

const TTL_MS = 10_000;
/** How often the baseline's waiter tries again: a typical hand-written lease poll. */
const RAW_POLL_MS = 10;

/**
 * The baseline lease, as people write it: one upsert that takes a free or expired row
 * and bumps a token, one update that frees it. No queue, no re-entry, no modes, no
 * renewal, no fence check: the least a lease with a token can do.
 */
const RAW = {
  create: `create table raw_leases (name text primary key, owner text, token bigint not null, expires_at timestamptz not null)`,
  take: `insert into raw_leases as l (name, owner, token, expires_at) values (?, ?, 1, now() + ?::bigint * interval '1 millisecond')
         on conflict (name) do update set owner = excluded.owner, token = l.token + 1, expires_at = excluded.expires_at
         where l.expires_at <= now()
         returning token`,
  free: `update raw_leases set owner = null, expires_at = '-infinity' where name = ? and owner = ? and token = ?`,
};

async function rawTake(knex: Knex, name: string, owner: string): Promise<string | undefined> {
  const { rows } = await knex.raw(RAW.take, [name, owner, TTL_MS]);
  return rows[0]?.token;
}

async function rawFree(knex: Knex, name: string, owner: string, token: string): Promise<void> {
  await knex.raw(RAW.free, [name, owner, token]);
}

/** Acquire + release of a free lock, one after the other, for `count` rounds: rounds per second. */
async function uncontended(round: (i: number) => Promise<void>, count: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) await round(i);
  return count / ((performance.now() - started) / 1000);
}

/**
 * A holder and one waiter in another manager, `count` times: ms from the holder's
 * release call to the waiter's grant (NOTIFY wake-up, then its attempt).
 */
async function handOverLock(a: PostgresLockManager, b: PostgresLockManager, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const name = `handover:${i}`;
    const held = await a.acquire(name, { ttlMs: TTL_MS });
    const queued = new Promise<void>((resolve) => {
      const off = b.on('lock:waiting', () => {
        off();
        resolve();
      });
    });
    const next = b.acquire(name, { ttlMs: TTL_MS });
    await queued;
    const t = performance.now();
    await held.release();
    const granted = await next;
    latencies.push(performance.now() - t);
    await granted.release();
  }
  return latencies;
}

/** The same with the raw lease: the waiter tries every RAW_POLL_MS. */
async function handOverRaw(knex: Knex, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const name = `handover:${i}`;
    const token = await rawTake(knex, name, 'holder');
    let freedAt = 0;
    const waiter = (async () => {
      for (;;) {
        const got = await rawTake(knex, name, 'waiter');
        if (got !== undefined) return got;
        await sleep(RAW_POLL_MS);
      }
    })();
    await sleep(3 * RAW_POLL_MS); // the waiter is polling
    freedAt = performance.now();
    await rawFree(knex, name, 'holder', token!);
    const got = await waiter;
    latencies.push(performance.now() - freedAt);
    await rawFree(knex, name, 'waiter', got);
  }
  return latencies;
}

/**
 * Issue 17's benchmark, PostgreSQL backend: what the lock's guarantees (FIFO queue,
 * re-entry, modes, renewal, fencing) cost over the least lease a user could write.
 */
const lockPostgres: Benchmark = {
  name: 'lock-postgres',
  order: 6,
  title: 'Lock (PostgreSQL): acquire + release, hand-over',
  description:
    'Uncontended tryAcquire + release of one free lock after another (@eventual/lock, PostgreSQL), against a raw ' +
    '`INSERT ... ON CONFLICT DO UPDATE ... WHERE expired` + `UPDATE` lease loop; and contended hand-over latency ' +
    '(release call to the next waiter holding it: NOTIFY to that waiter only) against the raw lease with a waiter ' +
    `polling every ${RAW_POLL_MS} ms; knex pool of 10, one process.`,
  async run(ctx) {
    const rounds = ctx.size(2_000, 100);
    const handovers = ctx.size(200, 20);
    const url = await ctx.services.createDatabase('bench_lock');
    const knex = connect(url, 10);
    const a = createPostgresLock({ knex, logger: silentLogger });
    const b = createPostgresLock({ knex, logger: silentLogger });
    try {
      await a.migrate();
      await knex.raw(RAW.create);
      await a.start();
      await b.start();
      const lockRound = async (i: number) => {
        const held = await a.tryAcquire(`free:${i % 100}`, { ttlMs: TTL_MS });
        if (!held) throw new Error('a free lock was not granted');
        await held.release();
      };
      const rawRound = async (i: number) => {
        const token = await rawTake(knex, `free:${i % 100}`, 'owner');
        if (token === undefined) throw new Error('a free raw lease was not taken');
        await rawFree(knex, `free:${i % 100}`, 'owner', token);
      };
      await uncontended(lockRound, ctx.size(200, 20)); // warm up
      await uncontended(rawRound, ctx.size(200, 20));

      const ops: Sample[] = [];
      const p50: Sample[] = [];
      const p99: Sample[] = [];
      const details: unknown[] = [];
      for (let rep = 1; rep <= ctx.reps; rep++) {
        const { result, load } = await ctx.repetition(rep, async () => ({
          lockOps: await uncontended(lockRound, rounds),
          rawOps: await uncontended(rawRound, rounds),
          lockHandOver: summariseLatencies(await handOverLock(a, b, handovers)),
          rawHandOver: summariseLatencies(await handOverRaw(knex, handovers)),
        }));
        // Each repetition's hand-overs use the same names again: clear them for the next.
        await knex.raw('truncate raw_leases');
        ops.push({ value: result.lockOps, baseline: result.rawOps });
        p50.push({ value: result.lockHandOver.p50, baseline: result.rawHandOver.p50 });
        p99.push({ value: result.lockHandOver.p99, baseline: result.rawHandOver.p99 });
        details.push({ rep, load, ...result });
        ctx.log(
          `rep ${rep}: ${round(result.lockOps, 0)} vs ${round(result.rawOps, 0)} acquire+release/s; hand-over p50 ` +
            `${round(result.lockHandOver.p50, 2)} vs ${round(result.rawHandOver.p50, 2)} ms`,
        );
      }
      const raw = 'raw INSERT ... ON CONFLICT lease';
      return {
        figures: [
          figure(
            {
              id: 'uncontended.ops',
              label: 'Uncontended acquire + release',
              unit: '/s',
              baselineLabel: raw,
              better: 'higher',
            },
            ops,
          ),
          figure(
            {
              id: 'handover.p50',
              label: 'Hand-over to the next waiter, p50',
              unit: 'ms',
              baselineLabel: `${raw}, ${RAW_POLL_MS} ms poll`,
              better: 'lower',
            },
            p50,
          ),
          figure(
            {
              id: 'handover.p99',
              label: 'Hand-over to the next waiter, p99',
              unit: 'ms',
              baselineLabel: `${raw}, ${RAW_POLL_MS} ms poll`,
              better: 'lower',
            },
            p99,
          ),
        ],
        parameters: { rounds, handovers, ttlMs: TTL_MS, rawPollMs: RAW_POLL_MS, knexPoolMax: 10, reps: ctx.reps },
        details: { reps: details },
      };
    } finally {
      await b.stop();
      await a.stop();
      await knex.destroy();
    }
  },
};

export default lockPostgres;
