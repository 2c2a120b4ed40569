import { EventualError } from '@eventual/core';

declare module '@eventual/core' {
  interface EventualErrorCodes {
    lock_not_held: LockNotHeldError;
    lock_lost: LockLostError;
    lock_timeout: LockTimeoutError;
    lock_aborted: LockAbortedError;
    lock_mode: LockModeError;
  }
}

/**
 * `release()` of a handle that holds nothing any more: released already (`reason:
 * 'released'`), or its lease was lost (expired, or taken by a newer holder: `'lost'`).
 * Nothing was changed; when it says `lost`, the work done under the handle ran
 * (at least in part) without the lock.
 */
export class LockNotHeldError extends EventualError {
  override name = 'LockNotHeldError';
  /** Which lock. */
  readonly lock: string;
  /** `released`: this handle was released before; `lost`: its lease ended without a release. */
  readonly reason: 'released' | 'lost';
  constructor(lock: string, reason: 'released' | 'lost') {
    super(
      'lock_not_held',
      reason === 'released'
        ? `lock '${lock}': this handle was already released (release each handle once)`
        : `lock '${lock}': this handle no longer holds the lock (its lease expired or a newer holder took it); nothing was released`,
      { retriable: false },
    );
    this.lock = lock;
    this.reason = reason;
  }
}

/**
 * The lease behind a handle is gone: it expired before it could be renewed, or a newer
 * holder took it (its fencing token is no longer current). It is the handle's
 * `signal.reason` once lost, and what `guard(trx)` throws, failing the caller's
 * transaction so a stale holder's write never commits.
 */
export class LockLostError extends EventualError {
  override name = 'LockLostError';
  /** Which lock. */
  readonly lock: string;
  /** The fencing token that is no longer current. */
  readonly token: bigint;
  constructor(lock: string, token: bigint, detail: string, cause?: unknown) {
    super('lock_lost', `lock '${lock}' (token ${token}) is lost: ${detail}`, { retriable: false, cause });
    this.lock = lock;
    this.token = token;
  }
}

/** `acquire` waited `timeoutMs` without getting the lock; its place in the queue was given up. */
export class LockTimeoutError extends EventualError {
  override name = 'LockTimeoutError';
  /** Which lock. */
  readonly lock: string;
  constructor(lock: string, timeoutMs: number, cause?: unknown) {
    super('lock_timeout', `lock '${lock}' was not granted within ${timeoutMs} ms (timeoutMs)`, {
      retriable: true,
      cause,
    });
    this.lock = lock;
  }
}

/**
 * `acquire` was aborted (its `signal`, or the manager stopping) before the lock was
 * granted; its place in the queue was given up. `cause` is the signal's reason.
 */
export class LockAbortedError extends EventualError {
  override name = 'LockAbortedError';
  /** Which lock. */
  readonly lock: string;
  constructor(lock: string, why: string, cause?: unknown) {
    super('lock_aborted', `acquiring lock '${lock}' was aborted: ${why}`, { retriable: false, cause });
    this.lock = lock;
  }
}

/**
 * An owner holding a lock `shared` asked for it `exclusive` again (an upgrade). Two
 * readers upgrading at once would wait for each other forever, so it is refused:
 * release the shared hold first. Nothing was changed.
 */
export class LockModeError extends EventualError {
  override name = 'LockModeError';
  constructor(message: string, cause?: unknown) {
    super('lock_mode', message, { retriable: false, cause });
  }
}
