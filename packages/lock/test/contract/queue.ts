import { describe, expect, it } from 'vitest';
import type { LockHandle, LockManager } from '../../src/index.js';
import { nextWaiting } from './modes.js';
import { type ContractContext, lockName } from './suite.js';

export function queueContract<H extends LockHandle>(c: ContractContext<H>): void {
  describe('waiting without a herd', () => {
    it('wakes exactly one of 50 waiters per release, and grants in arrival order', async () => {
      const name = lockName('herd');
      // No fallback poll within the test: a waiter can only be woken by a release.
      const managers: LockManager[] = [];
      for (let i = 0; i < 5; i++) managers.push(await c.manager({ pollIntervalMs: 60_000 }));
      const wakeups: Array<{ waiterId: string; cause: string }> = [];
      for (const m of managers) m.on('lock:wakeup', (w) => wakeups.push(w));
      const holder = await managers[0]!.acquire(name, { ttlMs: 120_000 });

      const granted: number[] = [];
      const waiters: Array<Promise<LockHandle>> = [];
      for (let i = 0; i < 50; i++) {
        const manager = managers[i % managers.length]!;
        const queued = nextWaiting(manager);
        waiters.push(
          manager.acquire(name, { ttlMs: 120_000 }).then((h) => {
            granted.push(i);
            return h;
          }),
        );
        await queued; // arrival order is this loop's order
      }
      expect(wakeups).toEqual([]);

      await holder.release();
      const first = await waiters[0]!;
      expect(granted).toEqual([0]);
      expect(wakeups.map((w) => w.cause)).toEqual(['notify']);

      // Each holder hands over to the next as soon as it has the lock.
      let previous = first;
      for (let i = 1; i < 50; i++) {
        await previous.release();
        const next = await waiters[i]!;
        expect(next.token).toBeGreaterThan(previous.token);
        previous = next;
      }
      await previous.release();
      expect(granted).toEqual(Array.from({ length: 50 }, (_, i) => i));
      // One wake-up per release, each meant for the waiter whose turn it was.
      expect(wakeups.length).toBe(50);
      expect(wakeups.every((w) => w.cause === 'notify')).toBe(true);
      expect(new Set(wakeups.map((w) => w.waiterId)).size).toBe(50);
    });
  });
}
