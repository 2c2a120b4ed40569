import { InvalidOptionError } from '@eventual/core';
import { describe, expect, it } from 'vitest';
import type { LockHandle } from '../../src/index.js';
import { LockLostError, LockNotHeldError, MAX_LOCK_NAME } from '../../src/index.js';
import { type ContractContext, expectFree, lockName } from './suite.js';

/** Blocks this process's event loop for `ms`: its timers (renewals) run late, as after a long GC pause. */
export function freeze(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function badInputContract<H extends LockHandle>(c: ContractContext<H>): void {
  describe('bad input', () => {
    it.each([
      ['an empty name', '', { ttlMs: 1_000 }],
      ['a name over the limit', 'x'.repeat(MAX_LOCK_NAME + 1), { ttlMs: 1_000 }],
      ['a name that is not a string', 42, { ttlMs: 1_000 }],
      ['a ttl of 0', 'n', { ttlMs: 0 }],
      ['a negative ttl', 'n', { ttlMs: -5 }],
      ['a fractional ttl', 'n', { ttlMs: 1.5 }],
      ['no ttl', 'n', {}],
      ['a negative timeout', 'n', { ttlMs: 1_000, timeoutMs: -1 }],
      ['an unknown mode', 'n', { ttlMs: 1_000, mode: 'read' }],
      ['an empty owner', 'n', { ttlMs: 1_000, owner: '' }],
      ['an unknown option', 'n', { ttlMs: 1_000, ttl: 5 }],
      ['a signal that is not an AbortSignal', 'n', { ttlMs: 1_000, signal: {} }],
    ])('refuses %s with InvalidOptionError, and takes nothing', async (_, name, options) => {
      const locks = await c.manager();
      const lock = typeof name === 'string' && name === 'n' ? lockName('bad') : name;
      for (const verb of ['acquire', 'tryAcquire'] as const) {
        const error = await (locks[verb] as (n: unknown, o: unknown) => Promise<unknown>)(lock, options).catch(
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(InvalidOptionError);
        expect((error as InvalidOptionError).code).toBe('invalid_option');
      }
      if (typeof lock === 'string' && lock.length > 0 && lock.length <= MAX_LOCK_NAME) {
        await expectFree(locks, lock);
      }
    });

    it('refuses a second release of a handle with LockNotHeldError (released), leaving the next holder alone', async () => {
      const locks = await c.manager();
      const name = lockName('twice');
      const held = await locks.acquire(name, { ttlMs: 30_000 });
      await held.release();
      const next = await locks.acquire(name, { ttlMs: 30_000 });
      const error = await held.release().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockNotHeldError);
      expect(error).toMatchObject({ code: 'lock_not_held', reason: 'released' });
      expect(next.held).toBe(true);
      expect(await locks.tryAcquire(name, { ttlMs: 30_000 })).toBeUndefined();
      await next.release();
    });

    it('refuses the release of a lock its handle no longer holds (expired, taken) with LockNotHeldError (lost), leaving the new holder alone', async () => {
      const locks = await c.manager();
      const name = lockName('not-held');
      const stale = await locks.acquire(name, { ttlMs: 300 });
      freeze(900); // no renewal gets out in time
      await expect.poll(() => stale.signal.aborted).toBe(true);
      expect(stale.signal.reason).toBeInstanceOf(LockLostError);
      const next = await locks.acquire(name, { ttlMs: 30_000 });
      expect(next.token).toBeGreaterThan(stale.token);
      const error = await stale.release().catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'lock_not_held', reason: 'lost' });
      expect(next.held).toBe(true);
      expect(await locks.tryAcquire(name, { ttlMs: 30_000 })).toBeUndefined();
      await next.release();
    });
  });
}
