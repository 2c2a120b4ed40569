import { describe, expect, it } from 'vitest';
import { type LockHandle, type LockManager, LockModeError } from '../../src/index.js';
import { type ContractContext, expectFree, lockName } from './suite.js';

/** Resolves at the manager's next `lock:waiting`: an acquire has its place in the queue. */
export function nextWaiting(locks: LockManager): Promise<void> {
  return new Promise<void>((resolve) => {
    const off = locks.on('lock:waiting', () => {
      off();
      resolve();
    });
  });
}

export function modesContract<H extends LockHandle>(c: ContractContext<H>): void {
  describe('shared and exclusive', () => {
    it('lets readers overlap, a writer wait for them, and readers that come after a waiting writer wait behind it', async () => {
      const locks = await c.manager();
      const name = lockName('rw');
      const reader1 = await locks.acquire(name, { ttlMs: 30_000, mode: 'shared' });
      const reader2 = await locks.tryAcquire(name, { ttlMs: 30_000, mode: 'shared' });
      expect(reader2).toBeDefined(); // readers overlap
      const order: string[] = [];
      const queued = nextWaiting(locks);
      const writer = locks.acquire(name, { ttlMs: 30_000 }).then((h) => {
        order.push('writer');
        return h;
      });
      await queued;
      // A new reader would starve the waiting writer: it is refused or queued behind it.
      expect(await locks.tryAcquire(name, { ttlMs: 30_000, mode: 'shared' })).toBeUndefined();
      const laterReaders: Array<Promise<LockHandle>> = [];
      for (let i = 0; i < 2; i++) {
        const queuedReader = nextWaiting(locks);
        laterReaders.push(
          locks.acquire(name, { ttlMs: 30_000, mode: 'shared' }).then((h) => {
            order.push('reader');
            return h;
          }),
        );
        await queuedReader;
      }
      await reader1.release();
      expect(order).toEqual([]); // one reader still holds it
      await reader2?.release();
      const writing = await writer;
      expect(order).toEqual(['writer']);
      await writing.release();
      const readers = await Promise.all(laterReaders);
      expect(order).toEqual(['writer', 'reader', 'reader']);
      expect(readers.every((r) => r.held)).toBe(true); // both readers hold it together
      expect(readers[0]!.token).not.toBe(readers[1]!.token);
      expect(readers.every((r) => r.token > writing.token)).toBe(true);
      for (const r of readers) await r.release();
    });

    it('gets a waiting writer the lock through a stream of overlapping readers, and no reader holds it meanwhile', async () => {
      const name = lockName('stream');
      const readersManager = await c.manager({ pollIntervalMs: 50 });
      let active = 0;
      let mostAtOnce = 0;
      let reads = 0;
      let writing = false;
      let overlappedWriter = false;
      let streaming = true;
      // Four readers holding 100 ms each, a quarter apart, each taking the lock again as
      // soon as it let it go: at every instant one of them holds it, so without the rule
      // that a waiting writer holds back newer readers the writer would never get in.
      const readers = Array.from({ length: 4 }, async (_, i) => {
        await new Promise((resolve) => setTimeout(resolve, 25 * i));
        while (streaming) {
          const held = await readersManager.acquire(name, { ttlMs: 30_000, mode: 'shared' });
          active += 1;
          reads += 1;
          mostAtOnce = Math.max(mostAtOnce, active);
          if (writing) overlappedWriter = true;
          await new Promise((resolve) => setTimeout(resolve, 100));
          active -= 1;
          await held.release();
        }
      });
      try {
        await expect.poll(() => mostAtOnce, { timeout: 20_000 }).toBeGreaterThanOrEqual(2); // readers overlap
        const writers = await c.manager({ pollIntervalMs: 50 });
        const writer = await writers.acquire(name, { ttlMs: 30_000, timeoutMs: 15_000 });
        writing = true;
        expect(active).toBe(0);
        const readsBefore = reads;
        await writer.release();
        writing = false;
        await expect.poll(() => reads, { timeout: 20_000 }).toBeGreaterThan(readsBefore); // and the stream goes on
      } finally {
        streaming = false;
        await Promise.allSettled(readers);
      }
      expect(overlappedWriter).toBe(false);
    });

    it('refuses to re-enter a shared hold as exclusive (an upgrade), changing nothing', async () => {
      const locks = await c.manager();
      const name = lockName('upgrade');
      const shared = await locks.acquire(name, { ttlMs: 30_000, mode: 'shared', owner: 'reader' });
      const error = await locks.acquire(name, { ttlMs: 30_000, owner: 'reader' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockModeError);
      expect((error as LockModeError).code).toBe('lock_mode');
      const again = await locks.acquire(name, { ttlMs: 30_000, mode: 'shared', owner: 'reader' });
      expect(again.holds).toBe(2); // the refused upgrade took no hold
      await again.release();
      await shared.release();
      await expectFree(locks, name);
    });
  });
}
