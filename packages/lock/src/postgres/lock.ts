import {
  asError,
  databaseOf,
  InvalidOptionError,
  isDatabaseOutage,
  isKnexTransaction,
  LifecycleError,
  type Listener,
  lifecycle,
  nonEmptyString,
  runMigrations,
  sameDatabase,
  startListener,
  TypedEmitter,
} from '@eventual/core';
import type { Knex } from 'knex';
import { LockLostError } from '../errors.js';
import { type Grant, type HandleContext, LeaseHandle, type LeasePort } from '../handle.js';
import { MAX_LOCK_NAME, type ResolvedAcquire, resolveAcquire } from '../options.js';
import type { AcquireOptions, LockEventMap, LockHandle, LockManager } from '../types.js';
import { type AttemptOutcome, waitForGrant } from '../wait-for-grant.js';
import { WakeRegistry } from '../wake-registry.js';
import { lockMigrations } from './migrations.js';
import { type PostgresLockOptions, resolvePostgresLockOptions } from './options.js';
import * as sql from './sql.js';

/** A PostgreSQL lock handle: a `LockHandle` that can also fence a write in the caller's transaction. */
export interface PostgresLockHandle extends LockHandle {
  /**
   * Checks, inside `trx`, that this handle's token is still the current holder's, and
   * keeps it so until `trx` ends: the write and the check commit together, or the
   * check throws `LockLostError` and the transaction (when you let the error out of
   * `knex.transaction`) rolls back. A newer holder waits for `trx` to end; release the
   * handle after it ends (`release()` inside it is refused: it would wait for itself).
   */
  guard(trx: Knex.Transaction): Promise<void>;
}

/** The PostgreSQL lock manager: the backend-neutral `LockManager`, its guard by token, and its migrations. */
export interface PostgresLockManager extends LockManager<PostgresLockHandle> {
  /**
   * `handle.guard(trx)` for a token that travelled (to another process, another
   * service on this database): throws `LockLostError` unless `token` is the current
   * holder's of `name`, and keeps it so until `trx` ends.
   */
  guard(trx: Knex.Transaction, name: string, token: bigint): Promise<void>;
  /** Creates or upgrades the lock tables (or add `lockMigrations()` to your knex migrations). */
  migrate(): Promise<void>;
}

type PostgresGrant = { token: bigint; holds: number };
type GuardFunction = (trx: Knex.Transaction, name: string, token: bigint) => Promise<void>;

class PostgresHandle extends LeaseHandle implements PostgresLockHandle {
  readonly #guard: GuardFunction;

  constructor(grant: Grant, port: LeasePort, context: HandleContext, guard: GuardFunction) {
    super(grant, port, context);
    this.#guard = guard;
  }

  /** Transactions this handle guarded, until they end: a release inside one would wait for it forever. */
  readonly #guarded = new Set<Knex.Transaction>();

  #forgetEnded(): void {
    for (const trx of this.#guarded) if (trx.isCompleted()) this.#guarded.delete(trx);
  }

  protected override checkRelease(): void {
    this.#forgetEnded();
    if (this.#guarded.size > 0)
      throw new InvalidOptionError(
        `release() of lock '${this.name}' inside the transaction it guards would wait for that transaction forever ` +
          '(the guard keeps the lease row until the transaction ends): release after knex.transaction(...) settles',
      );
  }

  async guard(trx: Knex.Transaction): Promise<void> {
    this.assertHeld();
    this.#forgetEnded();
    try {
      await this.#guard(trx, this.name, this.token);
      this.#guarded.add(trx); // it keeps the lease row from now until it ends
    } catch (error) {
      if (error instanceof LockLostError) throw this.markLost('guard found its token no longer current');
      throw error;
    }
  }
}

/**
 * Locks on PostgreSQL, through a knex pool: lease rows with a TTL on the server's
 * clock and a fencing token that only grows, a FIFO queue of waiters woken one by one
 * with a NOTIFY on this manager's own channel (a fallback poll keeps it correct without
 * NOTIFY), re-entry per owner, shared and exclusive modes. No session-level state
 * (no advisory locks): it works behind PgBouncer in transaction mode, except that the
 * wake-ups need LISTEN (without it, waiters find their turn at their poll).
 */
export function createPostgresLock(options: PostgresLockOptions): PostgresLockManager {
  const o = resolvePostgresLockOptions(options);
  const { knex, instanceId } = o;
  const events = new TypedEmitter<LockEventMap>('lock', o.logger);
  const registry = new WakeRegistry();
  const stopping = new AbortController();
  const handles = new Set<LeaseHandle>();
  const acquiring = new Set<Promise<unknown>>();
  const waitTtlMs = 3 * o.pollIntervalMs;
  let listener: Listener | undefined;

  const life = lifecycle('lock manager', {
    async start() {
      listener = startListener(
        knex,
        o.channel,
        (payload) => (payload === undefined ? registry.wakeAll() : registry.wake(payload)),
        (error) => events.emit('lock:error', { instanceId, during: 'listen', error }),
      );
    },
    async stop() {
      stopping.abort();
      await Promise.allSettled([...acquiring]);
      // A release that cannot be made (refused, the database is gone) stops the renewal:
      // the lease then expires within its TTL.
      await Promise.allSettled([...handles].map((handle) => handle.release().catch(() => handle.abandon())));
      await listener?.stop();
    },
  });

  const assertRunning = (verb: string) => {
    if (life.state !== 'running')
      throw new LifecycleError(`lock manager ${instanceId} cannot ${verb}: it is ${life.state} (call start() first)`);
  };

  const context: HandleContext = { instanceId, events, logger: o.logger, ended: (handle) => handles.delete(handle) };

  const guard = async (trx: Knex.Transaction, name: string, token: bigint) => {
    if (!isKnexTransaction(trx))
      throw new InvalidOptionError('guard(trx) needs the knex transaction of the write it protects');
    if (!sameDatabase(trx, knex))
      throw new InvalidOptionError(
        `guard(trx) got a transaction of database ${databaseOf(trx)}, but the locks live in ${databaseOf(knex)}: ` +
          'a check there would prove nothing about this lock',
      );
    const [current] = await sql.run(trx, sql.guard(o, name, token));
    if (!current) throw new LockLostError(name, token, 'a newer holder has it, or its lease expired');
  };

  const grantHandle = (a: ResolvedAcquire, grant: PostgresGrant, sentAt: number, waitedMs: number) => {
    const port: LeasePort = {
      renew: async () => (await sql.run(knex, sql.renew(o, a.name, a.owner, grant.token, a.ttlMs))).length > 0,
      release: async () => {
        const [row] = await sql.run<{ released: boolean; holds: number }>(
          knex,
          sql.release(o, a.name, a.owner, grant.token, a.requestId),
        );
        return row?.released ? row.holds : undefined;
      },
    };
    const handle = new PostgresHandle(
      { name: a.name, owner: a.owner, mode: a.mode, token: grant.token, holds: grant.holds, ttlMs: a.ttlMs, sentAt },
      port,
      context,
      guard,
    );
    handles.add(handle);
    events.emit('lock:acquired', {
      instanceId,
      name: a.name,
      owner: a.owner,
      mode: a.mode,
      token: grant.token,
      holds: grant.holds,
      waitedMs,
    });
    return handle;
  };

  const attempt = async (a: ResolvedAcquire, wait: boolean): Promise<AttemptOutcome<PostgresGrant>> => {
    const [row] = await sql.run<sql.AttemptRow>(knex, sql.attempt(o, a, wait, waitTtlMs));
    if (!row) throw new Error('lock.acquire returned no row');
    if (row.granted) return { grant: { token: BigInt(row.token ?? '0'), holds: row.holds ?? 1 } };
    return { waiterId: row.waiter ?? undefined, retryInMs: row.retry_ms ?? undefined };
  };

  /** Runs an acquire so that stop() can wait for it to finish giving its place up. */
  const tracked = <T>(work: Promise<T>): Promise<T> => {
    acquiring.add(work);
    return work.finally(() => acquiring.delete(work));
  };

  return {
    instanceId,
    get state() {
      return life.state;
    },
    start: () => life.start(),
    stop: () => life.stop(),
    on: (event, listener) => events.on(event, listener),

    async acquire(name, options: AcquireOptions) {
      const a = resolveAcquire('acquire', name, options);
      assertRunning('acquire');
      return tracked(
        (async () => {
          const { grant, sentAt, waitedMs } = await waitForGrant(a, {
            attempt: () => attempt(a, true),
            cancel: () => sql.run(knex, sql.cancel(o, a)).then(() => {}),
            registry,
            pollIntervalMs: o.pollIntervalMs,
            stopping: stopping.signal,
            instanceId,
            events,
          });
          return grantHandle(a, grant, sentAt, waitedMs);
        })(),
      );
    },

    async tryAcquire(name, options: AcquireOptions) {
      const a = resolveAcquire('tryAcquire', name, options);
      assertRunning('tryAcquire');
      const sentAt = performance.now();
      try {
        const outcome = await attempt(a, false);
        return outcome.grant ? grantHandle(a, outcome.grant, sentAt, 0) : undefined;
      } catch (error) {
        // The answer may be lost after a grant: give it back rather than leave it to expire.
        if (isDatabaseOutage(error)) await sql.run(knex, sql.cancel(o, a)).catch(() => {});
        throw asError(error);
      }
    },

    async guard(trx, name, token) {
      const lock = nonEmptyString('guard(trx, name)', name, MAX_LOCK_NAME);
      if (typeof token !== 'bigint') throw new InvalidOptionError('guard(trx, name, token): token must be a bigint');
      await guard(trx, lock, token);
    },

    async migrate() {
      await runMigrations(
        knex,
        o.schema,
        `${o.table}_migrations`,
        lockMigrations({ schema: o.schema, table: o.table }),
      );
    },
  };
}
