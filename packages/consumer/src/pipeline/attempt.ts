import { asError, backoffDelay, sleep } from '@eventual/core';
import type { Message } from '@eventual/outbox';
import { truncate } from '../dead-letter-message.js';
import { NonRetriableError } from '../errors.js';
import { commitFailedByHandler, isRetriable } from '../retry.js';
import { claimMessage, recordFailure } from '../sql/inbox.js';
import { run } from '../sql/statement.js';
import { isReady, type PipelineContext, type Prepared, position, type Ready, type Settled } from './context.js';
import { deadLetter } from './dead-letter.js';
import { noteRecord, noteRetry } from './observe.js';
import { ABANDONED, checkAlive, outageUnder, untilAvailable, waitOutOutage } from './outage.js';
import { commit, invoke, rollback } from './transaction.js';

type Attempt =
  | { kind: 'processed'; attempts: number; durationMs: number }
  | { kind: 'duplicate' }
  | { kind: 'failed'; attempts: number; error: Error };

/**
 * Steps 2 and 3 for one prepared record (a record that settles without a handler
 * settles its own way): attempts, each in its own transaction, until one commits, the
 * inbox says the message is a duplicate, or the failures lead to step 4. A failed
 * attempt is recorded on the inbox row before the jittered backoff, so `maxAttempts`
 * holds across restarts and rebalances. An attempt that fails for want of the
 * database is repeated without counting.
 */
export async function settlePrepared(ctx: PipelineContext, prepared: Prepared, signal: AbortSignal): Promise<Settled> {
  if (!isReady(prepared)) return prepared.settle(signal);
  const { o, events, counters } = ctx;
  const { key, message } = prepared;
  const at = position(ctx, prepared.record);
  for (let unavailable = 1; ; ) {
    if (signal.aborted) return 'abandoned';
    let attempt: Attempt;
    try {
      attempt = await attemptOnce(ctx, prepared);
      unavailable = 1;
    } catch (error) {
      if (!(await waitOutOutage(ctx, error, at, unavailable++, signal))) return 'abandoned';
      continue;
    }
    if (attempt.kind === 'duplicate') {
      noteRecord({ duplicate: true });
      counters.duplicates += 1;
      events.emit('consumer:duplicate', { ...at, messageId: key.messageId });
      return 'done';
    }
    if (attempt.kind === 'processed') {
      noteRecord({ attempts: attempt.attempts });
      counters.processed += 1;
      events.emit('consumer:processed', {
        ...at,
        message: message as Message,
        attempts: attempt.attempts,
        durationMs: attempt.durationMs,
      });
      return 'done';
    }
    const { error, attempts } = attempt;
    const retriable = isRetriable(error);
    if (!retriable || attempts >= o.maxAttempts) {
      // 4. dead-letter
      return deadLetter(
        ctx,
        prepared.record,
        key.messageId,
        {
          reason: retriable ? 'max-attempts' : 'non-retriable',
          error: error.message,
          errorCode: codeOf(error),
          attempts,
        },
        signal,
      );
    }
    const recorded = await untilAvailable(ctx, at, signal, () =>
      run<{ attempts: number }>(o.knex, recordFailure(o.inboxTable, key, attempts, describe(error))),
    );
    if (recorded === ABANDONED) return 'abandoned';
    if (recorded.length === 0) continue; // settled meanwhile by another delivery: the next claim says so
    const retryInMs = backoffDelay(attempts, o.backoff);
    counters.retried += 1;
    noteRetry(attempts, retryInMs, error);
    events.emit('consumer:retried', { ...at, messageId: key.messageId, attempt: attempts, error, retryInMs });
    if (!(await sleep(retryInMs, signal))) return 'abandoned';
  }
}

/**
 * One attempt in one transaction. Throws only for failures that are not the
 * handler's (no connection, inbox missing, COMMIT outcome unknown): the caller
 * repeats the attempt without counting it.
 */
async function attemptOnce(ctx: PipelineContext, ready: Ready): Promise<Attempt> {
  const { o } = ctx;
  const started = Date.now();
  const trx = await o.knex.transaction();
  let claimed: { attempts: number } | undefined;
  try {
    [claimed] = await run<{ attempts: number }>(trx, claimMessage(o.inboxTable, ready.key));
  } catch (error) {
    await rollback(trx);
    throw error;
  }
  if (!claimed) {
    await rollback(trx); // nothing was written; ends the row lock DO UPDATE took
    return { kind: 'duplicate' };
  }
  try {
    await invoke(ctx, trx, ready, claimed.attempts);
    await checkAlive(trx);
  } catch (error) {
    // The connection died under the handler (a restart, pg_terminate_backend, a
    // lost socket): the database's fault, not the message's. Counted, it would
    // dead-letter valid messages after maxAttempts outages and leave a gap in the
    // key's history; thrown, the caller repeats the attempt once the database is back.
    const outage = await outageUnder(trx, error);
    await rollback(trx);
    if (outage) throw outage;
    return { kind: 'failed', attempts: claimed.attempts, error: asError(error) };
  }
  try {
    await commit(trx);
  } catch (error) {
    if (commitFailedByHandler(error)) return { kind: 'failed', attempts: claimed.attempts, error: asError(error) };
    throw error;
  }
  return { kind: 'processed', attempts: claimed.attempts, durationMs: Date.now() - started };
}

/**
 * The dead letter's stable code: a NonRetriableError's `businessCode`, else the error's
 * `code` (EventualError, or a driver's), else its name.
 */
function codeOf(error: Error): string {
  if (error instanceof NonRetriableError && error.businessCode !== undefined) return error.businessCode;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.length > 0 ? code : error.name;
}

/** The error as stored on the inbox row, bounded. */
function describe(error: Error): string {
  return truncate(`${error.name}: ${error.message}`);
}
