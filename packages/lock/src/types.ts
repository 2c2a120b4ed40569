import type { Lifecycle } from '@eventual/core';
import type { LockLostError } from './errors.js';

/** `exclusive` (a writer: nobody else holds it) or `shared` (readers hold it together). */
export type LockMode = 'exclusive' | 'shared';

/** What `acquire` and `tryAcquire` take besides the lock's name. */
export interface AcquireOptions {
  /**
   * How long the lease lasts without a renewal, in ms, on the server's clock (an
   * integer from 1 to 86 400 000). The handle renews it in the background every
   * `ttlMs / 3`; a holder that crashes leaves the lock held for at most this long.
   */
  ttlMs: number;
  /**
   * How long `acquire` waits for its turn, in ms (an integer >= 0). Default: no limit
   * (pass a `signal` to give up). `tryAcquire` never waits and ignores it.
   */
  timeoutMs?: number;
  /** Aborts the wait: `acquire` rejects with `LockAbortedError` and leaves the queue. */
  signal?: AbortSignal;
  /** `exclusive` (default) or `shared`. */
  mode?: LockMode;
  /**
   * Who holds the lock (1-200 characters). An owner that already holds the lock gets
   * it again at once (re-entry, counted: it stays held until every handle is
   * released). Default: a new random owner per call, so nothing re-enters by accident.
   */
  owner?: string;
  /**
   * The idempotency key of this acquire (1-200 characters). Repeating an acquire with
   * the same owner and `requestId` (because its answer was lost) returns the grant
   * it already got instead of counting a re-entry. Default: a new random id, which
   * the manager itself reuses while it repeats the call across a database outage.
   */
  requestId?: string;
}

/**
 * A granted lock. Release it once; until then its lease is renewed in the background,
 * and `signal` aborts (with a `LockLostError`) if the lease is lost.
 */
export interface LockHandle {
  /** The lock's name. */
  readonly name: string;
  /** The owner it is held by (see `AcquireOptions.owner`). */
  readonly owner: string;
  /** How it is held. */
  readonly mode: LockMode;
  /**
   * The fencing token: strictly greater than the token of every earlier grant of this
   * lock (a `bigint`: exact for every backend's 64-bit counter; send it as
   * `String(token)`, JSON has no bigint). A re-entry has its first grant's token.
   * Storage that refuses writes carrying a token older than the newest it saw cannot
   * be written by a holder that lost the lock without knowing it.
   */
  readonly token: bigint;
  /** How many times this owner holds the lock, counting this handle, when it was granted. */
  readonly holds: number;
  /** Aborts when the lease is lost (not on `release()`); `signal.reason` is the `LockLostError`. */
  readonly signal: AbortSignal;
  /** Whether the lease is still held as far as this process knows (not released, not lost). */
  readonly held: boolean;
  /**
   * Gives this hold back; the lock is free once every hold of its owner is released,
   * and the next waiter is woken. Rejects with `LockNotHeldError` when the handle was
   * released already or its lease was lost; nothing changes then.
   */
  release(): Promise<void>;
}

/** Events of a lock manager, each with its `instanceId`. */
export interface LockEventMap {
  /** A lock was granted (`waitedMs` from the call to the grant). */
  'lock:acquired': {
    instanceId: string;
    name: string;
    owner: string;
    mode: LockMode;
    token: bigint;
    holds: number;
    waitedMs: number;
  };
  /** An `acquire` joined the queue of a held lock (`waiterId` is its place). */
  'lock:waiting': { instanceId: string; name: string; owner: string; mode: LockMode; waiterId: string };
  /**
   * A waiting `acquire` looked again: woken by a release meant for it (`notify`), its
   * fallback poll (`poll`), the expiry of the lease in its way (`expiry`), or after an
   * outage (`outage`).
   */
  'lock:wakeup': { instanceId: string; name: string; waiterId: string; cause: 'notify' | 'poll' | 'expiry' | 'outage' };
  /** A hold was released; `holds` is what the owner still holds (0: the lock is free). */
  'lock:released': { instanceId: string; name: string; owner: string; token: bigint; holds: number };
  /** A lease was lost; the handle's `signal` aborted with `error`. */
  'lock:lost': { instanceId: string; name: string; owner: string; token: bigint; error: LockLostError };
  /**
   * A background step failed and will be repeated (a renewal, a release or a cancel
   * during an outage, the LISTEN connection); reported, never thrown.
   */
  'lock:error': {
    instanceId: string;
    name?: string;
    during: 'renew' | 'release' | 'cancel' | 'acquire' | 'listen';
    error: Error;
  };
}

/**
 * What every lock backend offers (PostgreSQL today; Redis and ZooKeeper to come), and
 * what the shared contract suite (test/contract) checks for each. A manager is a
 * `Lifecycle`: `start()` before acquiring, `stop()` aborts its waits and releases
 * what it holds.
 */
export interface LockManager<H extends LockHandle = LockHandle> extends Lifecycle {
  /** Names this manager in events. */
  readonly instanceId: string;
  /**
   * Waits for the lock, first come first served, and resolves with its handle.
   * Rejects with `LockTimeoutError` after `timeoutMs`, `LockAbortedError` when
   * `signal` aborts, `InvalidOptionError` for a bad name or option (nothing changed).
   */
  acquire(name: string, options: AcquireOptions): Promise<H>;
  /** Takes the lock if it can be granted right now, else resolves `undefined`; never waits. */
  tryAcquire(name: string, options: AcquireOptions): Promise<H | undefined>;
  /** Adds a listener; returns the function that removes it. A listener that throws is logged, never breaks the manager. */
  on<E extends keyof LockEventMap>(event: E, listener: (payload: LockEventMap[E]) => void): () => void;
}
