import { asError, backoffDelay, isDatabaseOutage, OUTAGE_BACKOFF, sleep, sqlStateOf } from '@eventual/core';
import type { Knex } from 'knex';
import { TransactionAbortedError } from '../errors.js';
import type { RecordPosition } from '../events.js';
import { transactionAlive } from '../sql/inbox.js';
import { run } from '../sql/statement.js';
import type { PipelineContext } from './context.js';

/**
 * Returned when a stop or a rebalance cut a wait short: the record is not settled.
 *
 * Database or broker outages are not the message's fault: a step that fails for want
 * of them is repeated with backoff until it works, without counting an attempt, or
 * until a stop or a rebalance aborts the wait.
 */
export const ABANDONED = Symbol('abandoned');

/** Repeats `step` while it fails, with backoff and a `consumer:error` per outage, until it works or `signal` aborts. */
export async function untilAvailable<T>(
  ctx: PipelineContext,
  at: RecordPosition,
  signal: AbortSignal,
  step: () => Promise<T>,
): Promise<T | typeof ABANDONED> {
  for (let unavailable = 1; ; unavailable++) {
    if (signal.aborted) return ABANDONED;
    try {
      return await step();
    } catch (error) {
      if (!(await waitOutOutage(ctx, error, at, unavailable, signal))) return ABANDONED;
    }
  }
}

/**
 * One `consumer:error` per outage (its first failure, `streak` 1), then quiet backoff
 * until the step works. Resolves false when `signal` aborted the wait.
 */
export async function waitOutOutage(
  { events, counters }: PipelineContext,
  error: unknown,
  at: RecordPosition,
  streak: number,
  signal: AbortSignal,
): Promise<boolean> {
  if (streak === 1) {
    counters.errors += 1;
    events.emit('consumer:error', { ...at, error: asError(error), fatal: false });
  }
  return sleep(backoffDelay(streak, OUTAGE_BACKOFF), signal);
}

/**
 * Whether a failure inside the record's transaction was a database outage, decided by
 * asking the transaction's own connection, not by what the handler threw: a handler
 * may catch the driver's error and throw one of its own (still our outage), and a
 * handler's own socket error or client-side query timeout (an HTTP call, knex's
 * `.timeout()`) looks like an outage but is the handler's failure, to be retried and
 * bounded by maxAttempts. A healthy connection answers the probe, or fails it with
 * 25P02 when the handler's statement aborted the transaction: the failure is then the
 * handler's. Returns the error to report for an outage, else undefined.
 */
export async function outageUnder(trx: Knex.Transaction, error: unknown): Promise<Error | undefined> {
  try {
    await run(trx, transactionAlive);
    return undefined;
  } catch (probeError) {
    if (!isDatabaseOutage(probeError)) return undefined;
    return isDatabaseOutage(error) ? asError(error) : asError(probeError);
  }
}

/**
 * Before COMMIT: in a transaction that an earlier statement aborted this fails with
 * 25P02, where COMMIT would silently roll back (see TransactionAbortedError).
 */
export async function checkAlive(trx: Knex.Transaction): Promise<void> {
  try {
    await run(trx, transactionAlive);
  } catch (error) {
    throw sqlStateOf(error) === '25P02' ? new TransactionAbortedError(error) : error;
  }
}
