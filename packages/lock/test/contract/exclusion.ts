import { describe, expect, it } from 'vitest';
import type { LockHandle, LockManager } from '../../src/index.js';
import { LockAbortedError, LockTimeoutError } from '../../src/index.js';
import { nextWaiting } from './modes.js';
import { type ContractContext, expectFree, lockName } from './suite.js';

export function exclusionContract<H extends LockHandle>(c: ContractContext<H>): void {
  describe('mutual exclusion and fencing tokens', () => {
    it('grants an exclusive lock to one owner at a time, each grant with a token greater than the last', async () => {
      const locks = await c.manager();
      const name = lockName('exclusive');
      const tokens: bigint[] = [];
      for (let i = 0; i < 5; i++) {
        const held = await locks.tryAcquire(name, { ttlMs: 30_000 });
        if (!held) throw new Error('a free lock was not granted');
        tokens.push(held.token);
        expect(await locks.tryAcquire(name, { ttlMs: 30_000 })).toBeUndefined();
        await held.release();
      }
      expect(tokens.every((t, i) => i === 0 || t > tokens[i - 1]!)).toBe(true);
    });

    it('renews a held lease in the background: the holder keeps the lock for many times its ttl', async () => {
      const locks = await c.manager();
      const name = lockName('renewed');
      const held = await locks.acquire(name, { ttlMs: 300 });
      const other = await c.manager({ pollIntervalMs: 20 });
      let looks = 0;
      other.on('lock:wakeup', () => {
        looks += 1;
      });
      const waiter = other.acquire(name, { ttlMs: 30_000 });
      // 60 looks at 20 ms (jittered) take about four ttls: long past an unrenewed expiry.
      await expect.poll(() => looks, { timeout: 20_000 }).toBeGreaterThanOrEqual(60);
      expect(held.held).toBe(true);
      expect(held.signal.aborted).toBe(false);
      await held.release();
      const next = await waiter;
      expect(next.token).toBeGreaterThan(held.token);
      await next.release();
    });

    it('is re-entrant for the same owner, counted: held until every hold is released, under one token', async () => {
      const locks = await c.manager();
      const name = lockName('reentrant');
      const first = await locks.acquire(name, { ttlMs: 30_000, owner: 'job-1' });
      const second = await locks.acquire(name, { ttlMs: 30_000, owner: 'job-1' });
      expect([first.holds, second.holds]).toEqual([1, 2]);
      expect(second.token).toBe(first.token);
      await second.release();
      expect(await locks.tryAcquire(name, { ttlMs: 30_000 })).toBeUndefined();
      expect(first.held).toBe(true);
      await first.release();
      const next = await locks.tryAcquire(name, { ttlMs: 30_000 });
      expect(next?.token).toBeGreaterThan(first.token);
      await next?.release();
    });

    it('answers a repeated acquire (same owner and requestId, its answer lost) with the same grant, not a second hold', async () => {
      const locks = await c.manager();
      const name = lockName('lost-answer');
      const options = { ttlMs: 30_000, owner: 'worker-7', requestId: 'request-1' };
      const granted = await locks.acquire(name, options);
      const repeated = await locks.acquire(name, options);
      expect(repeated.token).toBe(granted.token);
      expect(repeated.holds).toBe(1);
      await repeated.release();
      await expectFree(locks, name);
    });

    it.each([
      {
        how: 'after timeoutMs',
        code: 'lock_timeout',
        wait: (locks: LockManager, name: string) => locks.acquire(name, { ttlMs: 30_000, timeoutMs: 300 }),
      },
      {
        how: 'when its signal aborts',
        code: 'lock_aborted',
        wait: async (locks: LockManager, name: string) => {
          const waiting = new AbortController();
          const queued = nextWaiting(locks);
          const waiter = locks.acquire(name, { ttlMs: 30_000, signal: waiting.signal });
          await queued;
          waiting.abort(new Error('the request was cancelled'));
          return waiter;
        },
      },
    ])('gives up $how, and leaves nothing in the queue', async ({ code, wait }) => {
      const locks = await c.manager();
      const name = lockName('give-up');
      const held = await locks.acquire(name, { ttlMs: 30_000 });
      const error = await wait(locks, name).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(code === 'lock_timeout' ? LockTimeoutError : LockAbortedError);
      expect((error as LockTimeoutError).code).toBe(code);
      await held.release();
      // A waiter left behind would be ahead of this try: it would be refused.
      await expectFree(locks, name);
    });

    it('rejects waits with LockAbortedError when the manager stops, and releases what it holds', async () => {
      const locks = await c.manager();
      const name = lockName('stop');
      const other = await c.manager();
      const held = await other.acquire(name, { ttlMs: 30_000 });
      const waiter = locks.acquire(name, { ttlMs: 30_000 }).catch((e: unknown) => e);
      await new Promise<void>((resolve) => locks.on('lock:waiting', () => resolve()));
      await locks.stop();
      expect(await waiter).toBeInstanceOf(LockAbortedError);
      await held.release();
      await expectFree(other, name);
    });
  });
}
