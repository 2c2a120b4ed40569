import { afterAll, afterEach, beforeAll, describe, expect } from 'vitest';
import type { LockHandle, LockManager } from '../../src/index.js';
import type { LockBackend } from './backend.js';
import { badInputContract } from './bad-input.js';
import { crashContract } from './crash.js';
import { exclusionContract } from './exclusion.js';
import { modesContract } from './modes.js';
import { queueContract } from './queue.js';

/** What each part of the contract gets: the backend, and managers it need not stop itself. */
export interface ContractContext<H extends LockHandle = LockHandle> {
  backend(): LockBackend<H>;
  /** A started manager on the backend, stopped after the test. */
  manager(options?: { pollIntervalMs?: number }): Promise<LockManager<H>>;
  /** Runs `cleanup` after the test (children to kill, handles to release). */
  defer(cleanup: () => Promise<unknown>): void;
}

/**
 * The one contract every lock backend passes (Watermill's test_pubsub.go idea): call
 * it from the backend's test file with a function that makes an isolated namespace.
 */
export function lockContract<H extends LockHandle>(backendName: string, make: () => Promise<LockBackend<H>>): void {
  describe(`lock contract: ${backendName}`, () => {
    let backend: LockBackend<H> | undefined;
    const cleanups: Array<() => Promise<unknown>> = [];
    beforeAll(async () => {
      backend = await make();
    });
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
    });
    afterAll(async () => {
      await backend?.storage.knex.destroy();
    });
    const context: ContractContext<H> = {
      backend: () => {
        if (!backend) throw new Error('the backend was not made (beforeAll failed)');
        return backend;
      },
      async manager(options = {}) {
        const manager = context.backend().manager(options);
        await manager.start();
        cleanups.push(() => manager.stop());
        return manager;
      },
      defer: (cleanup) => cleanups.push(cleanup),
    };
    exclusionContract(context);
    modesContract(context);
    queueContract(context);
    badInputContract(context);
    crashContract(context);
  });
}

/** A lock name no other test uses. */
export function lockName(prefix: string): string {
  return `${prefix}:${Math.random().toString(36).slice(2, 10)}`;
}

/**
 * The lock is free right now: a try by a new owner gets it (then gives it back). What
 * a refused call, a timed-out or aborted waiter must leave behind.
 */
export async function expectFree(locks: LockManager, name: string): Promise<void> {
  const free = await locks.tryAcquire(name, { ttlMs: 30_000 });
  expect(free).toBeDefined();
  await free?.release();
}
