import { type BackoffPolicy, backoffDelay } from '@eventual/outbox';
import { sqlState } from './errors.js';

/**
 * Retriability is data on the error: a handler error is retried unless it says
 * `retriable: false` (NonRetriableError, the outbox's InvalidMessageError, ...).
 * Errors without the flag (a plain Error, a driver error) are retried: bounded by
 * `maxAttempts`, a retry that cannot help only delays the dead letter.
 */
export function isRetriable(error: unknown): boolean {
  return (error as { retriable?: unknown } | null)?.retriable !== false;
}

/** The delay before attempt `failedAttempts + 1`, jittered. */
export function retryDelay(failedAttempts: number, policy: BackoffPolicy): number {
  return backoffDelay(failedAttempts, policy);
}

/**
 * While the database or broker is unreachable a record waits with this backoff and
 * no attempt is counted: it is not the message's fault.
 */
export const UNAVAILABLE_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 5_000, factor: 2, jitter: 0.5 };

/**
 * A COMMIT can fail because of what the handler did (a deferred constraint, class 23;
 * a serialization failure or deadlock, class 40): that counts as a failed attempt.
 * Any other failure (connection lost mid-commit) leaves the outcome unknown; the
 * record is tried again without counting, and the inbox tells whether it committed.
 */
export function commitFailedByHandler(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && (code.startsWith('23') || code.startsWith('40'));
}

/** Waits `ms`, or less if `signal` aborts; resolves true if the full wait elapsed. */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (completed: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(completed);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
