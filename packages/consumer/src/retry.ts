import { sqlStateOf } from '@eventual/core';

/**
 * Retriability is data on the error: a handler error is retried unless it says
 * `retriable: false` (NonRetriableError, the outbox's InvalidMessageError, ...).
 * Errors without the flag (a plain Error, a driver error) are retried: bounded by
 * `maxAttempts`, a retry that cannot help only delays the dead letter.
 */
export function isRetriable(error: unknown): boolean {
  return (error as { retriable?: unknown } | null)?.retriable !== false;
}

/**
 * A COMMIT can fail because of what the handler did (a deferred constraint, class 23;
 * a serialization failure or deadlock, class 40): that counts as a failed attempt.
 * Any other failure (connection lost mid-commit) leaves the outcome unknown; the
 * record is tried again without counting, and the inbox tells whether it committed.
 */
export function commitFailedByHandler(error: unknown): boolean {
  const code = sqlStateOf(error);
  return code !== undefined && (code.startsWith('23') || code.startsWith('40'));
}
