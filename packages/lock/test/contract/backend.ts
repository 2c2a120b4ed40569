import type { Knex } from 'knex';
import type { LockHandle, LockManager } from '../../src/index.js';

/**
 * What a lock backend gives the shared contract suite: a namespace of its own (a fresh
 * database, a key prefix, a chroot) with a way to make managers on it, in this process
 * and in child processes.
 */
export interface LockBackend<H extends LockHandle = LockHandle> {
  /** A new manager on the namespace, not started (the suite starts and stops it). */
  manager(options: { pollIntervalMs?: number }): LockManager<H>;
  /**
   * A child process that runs `runWorker` (worker.ts) with a manager on the same
   * namespace: the script and the arguments that come before the worker's own.
   */
  worker: { script: string; args: string[] };
  /** The example storage's database (the devstack PostgreSQL for every backend). */
  storage: { url: string; knex: Knex };
  /** The backend's own fence inside the storage's transaction, when it has one (PostgreSQL's `guard(trx)`). */
  guard?: (handle: H, trx: Knex.Transaction) => Promise<void>;
}
