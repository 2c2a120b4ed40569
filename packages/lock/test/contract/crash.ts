import { startChild } from '@eventual/devstack/testing';
import { describe, expect, it } from 'vitest';
import type { LockHandle } from '../../src/index.js';
import { FencedCounter } from './counter.js';
import { nextWaiting } from './modes.js';
import { type ContractContext, lockName } from './suite.js';

export function crashContract<H extends LockHandle>(c: ContractContext<H>): void {
  const spawn = (args: string[]) => {
    const { script, args: backendArgs } = c.backend().worker;
    const child = startChild(script, [...backendArgs, ...args]);
    c.defer(() => child.kill());
    return child;
  };
  /** A child process holding `name` under `ttlMs`, once it reports its grant (and the storage, and its token). */
  const holder = async (prefix: string, ttlMs: number) => {
    const storage = await counter();
    const name = lockName(prefix);
    const child = spawn(['hold', name, storage.table, String(ttlMs)]);
    const acquired = await child.waitFor('acquired', 60_000);
    return { storage, name, child, token: BigInt(acquired.token as string) };
  };
  const counter = async () => {
    const storage = new FencedCounter(c.backend().storage.knex);
    await storage.create();
    return storage;
  };

  describe('processes', () => {
    it('20 processes incrementing a counter under the lock lose no update, and the tokens of the writes only grow', async () => {
      const storage = await counter();
      const name = lockName('counter');
      const processes = 20;
      const increments = 5;
      const children = Array.from({ length: processes }, () =>
        spawn(['count', name, storage.table, String(increments), '10000']),
      );
      for (const child of children) await child.waitFor('ready', 60_000);
      for (const child of children) child.child.send({ event: 'go' });
      const done = await Promise.all(children.map((child) => child.waitFor('done', 120_000)));
      // Each worker stops its manager and then exits on its own: no renewal timer, wait
      // or LISTEN connection is left behind to keep a process alive.
      await Promise.all(children.map((child) => child.exited));
      expect(children.map((child) => child.child.exitCode)).toEqual(children.map(() => 0));
      expect(done.map((d) => d.refused)).toEqual(children.map(() => 0));
      expect(await storage.value()).toBe(processes * increments);
      const log = await storage.log();
      expect(log.map((w) => w.value)).toEqual(Array.from({ length: processes * increments }, (_, i) => i + 1));
      expect(log.every((w, i) => i === 0 || w.token > log[i - 1]!.token)).toBe(true);
      // Every process saw its own tokens grow too.
      for (const d of done) {
        const tokens = (d.tokens as string[]).map(BigInt);
        expect(tokens.every((t, i) => i === 0 || t > tokens[i - 1]!)).toBe(true);
      }
    });

    it('hands the lock of a SIGKILLed holder to the next waiter once its lease expires', async () => {
      const ttlMs = 2_000;
      const { name, child, token } = await holder('killed', ttlMs);
      const locks = await c.manager({ pollIntervalMs: 1_000 });
      const looks: string[] = [];
      locks.on('lock:wakeup', ({ cause }) => looks.push(cause));
      const queued = nextWaiting(locks);
      const next = locks.acquire(name, { ttlMs: 30_000 });
      await queued;
      const killedAt = performance.now();
      await child.kill();
      const granted = await next;
      const handOverMs = Math.round(performance.now() - killedAt);
      console.log(
        `[lock contract] hand-over after SIGKILL: ${handOverMs} ms (ttl ${ttlMs} ms; the waiter looked again at: ${looks.join(', ')})`,
      );
      expect(granted.token).toBeGreaterThan(token);
      await granted.release();
    });

    it('a holder paused past its ttl learns it lost the lock when it resumes, and its writes are refused', async () => {
      const { storage, name, child, token: staleToken } = await holder('paused', 1_000);
      const locks = await c.manager({ pollIntervalMs: 200 });
      child.child.kill('SIGSTOP');
      c.defer(async () => void child.child.kill('SIGCONT'));
      const next = await locks.acquire(name, { ttlMs: 30_000 });
      expect(next.token).toBeGreaterThan(staleToken);
      const guard = c.backend().guard;
      expect(await storage.write(1, next.token, guard && ((trx) => guard(next, trx)))).toBe(true);

      child.child.send({ event: 'write' }); // read by the holder as soon as it runs again
      child.child.kill('SIGCONT');
      await child.waitFor('lost');
      const wrote = await child.waitFor('wrote');
      // The storage refuses the old token; the backend's own guard (PostgreSQL) refuses it
      // inside the write's transaction.
      expect(wrote.fenced).toBe(false);
      if (guard) expect(wrote.guarded).toBe('refused: lock_lost');
      expect(await storage.value()).toBe(1);
      expect((await storage.log()).map((w) => w.token)).toEqual([next.token]);
      await next.release();
    });
  });
}
