import { backoffDelay, isDatabaseOutage, OUTAGE_BACKOFF, sleep, sqlStateOf } from '@eventual/core';
import { InvalidMessageError, type Message } from '@eventual/outbox';
import type { Knex } from 'knex';
import { type DeadLetter, deadLetterMessages } from './dead-letter-message.js';
import { type Decoded, decodeRecord } from './decode.js';
import { asError, NonRetriableError, TransactionAbortedError } from './errors.js';
import type { ConsumerCounters, Events, RecordPosition } from './events.js';
import type { RegisteredHandler } from './handler.js';
import type { ResolvedConsumerOptions } from './options.js';
import { commitFailedByHandler, isRetriable, retryDelay } from './retry.js';
import {
  claimMessage,
  claimMessages,
  type InboxKey,
  recordFailure,
  settleDead,
  transactionAlive,
} from './sql/inbox.js';
import { run } from './sql/statement.js';
import type { InboundRecord } from './subscriber.js';

export interface PipelineContext {
  o: ResolvedConsumerOptions;
  handlers: Map<string, RegisteredHandler>;
  events: Events;
  counters: ConsumerCounters;
}

type Attempt =
  | { kind: 'processed'; attempts: number; durationMs: number }
  | { kind: 'duplicate' }
  | { kind: 'failed'; attempts: number; error: Error };

/** Returned when a stop or a rebalance cut a wait short: the record is not settled. */
const ABANDONED = Symbol('abandoned');
type Settled = 'done' | 'abandoned';

/**
 * The consumer pipeline, in this fixed order:
 *
 *   1. decode / validate  record -> message; malformed records go to step 4 at once
 *   2. inbox              one transaction: claim (consumer, message id) - a duplicate
 *                         ends here - then the handler with that transaction, commit
 *   3. retry              a failed attempt rolls back; retriable errors are tried again
 *                         after a jittered backoff, up to maxAttempts (counted in the inbox)
 *   4. dead-letter        one transaction: inbox row `dead` + a message to the
 *                         dead-letter topic through the outbox; the partition moves on
 *
 * `settle` resolves `done` only once the record is settled in the database, so the
 * subscriber commits its offset only then. Database or broker outages are not the
 * message's fault: the step is repeated with backoff until it works (no attempt is
 * counted), or until a stop/rebalance aborts the wait (`abandoned`, redelivered later).
 */
export function createPipeline(p: PipelineContext) {
  const { o, handlers, events, counters } = p;

  /** Step 1 for one record: a message ready for its handler, or how the record settles without one. */
  function prepare(record: InboundRecord): Ready | { settle: (signal: AbortSignal) => Promise<Settled> } {
    const decoded = decodeRecord(record);
    if (!decoded.ok)
      return {
        settle: (signal) => deadLetter(record, decoded.inboxId, malformed(decoded.reason, 'malformed_record'), signal),
      };
    const registered = handlers.get(decoded.message.type);
    if (!registered) return { settle: (signal) => unknownType(record, decoded, signal) };
    let message: Message<unknown> = decoded.message;
    if (registered.parse) {
      try {
        message = { ...message, payload: registered.parse(decoded.message.payload) };
      } catch (error) {
        const reason = `the payload of ${message.type} was rejected by its parse function: ${asError(error).message}`;
        return {
          settle: (signal) => deadLetter(record, decoded.inboxId, malformed(reason, 'invalid_payload'), signal),
        };
      }
    }
    return { key: { ...position(record), messageId: decoded.inboxId }, record, message, registered };
  }

  /** One record, from step 1 on. */
  function settle(record: InboundRecord, signal: AbortSignal): Promise<Settled> {
    return settlePrepared(prepare(record), signal);
  }

  async function settlePrepared(ready: ReturnType<typeof prepare>, signal: AbortSignal): Promise<Settled> {
    if ('settle' in ready) return ready.settle(signal);
    const { key, message } = ready;
    const at = position(ready.record);
    // 2. inbox + handler, 3. retry
    for (let unavailable = 1; ; ) {
      if (signal.aborted) return 'abandoned';
      let attempt: Attempt;
      try {
        attempt = await attemptOnce(ready);
        unavailable = 1;
      } catch (error) {
        if (!(await waitOutOutage(error, at, unavailable++, signal))) return 'abandoned';
        continue;
      }
      if (attempt.kind === 'duplicate') {
        counters.duplicates += 1;
        events.emit('consumer:duplicate', { ...at, messageId: key.messageId });
        return 'done';
      }
      if (attempt.kind === 'processed') {
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
          ready.record,
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
      const recorded = await untilAvailable(at, signal, () =>
        run<{ attempts: number }>(o.knex, recordFailure(o.inboxTable, key, attempts, describe(error))),
      );
      if (recorded === ABANDONED) return 'abandoned';
      if (recorded.length === 0) continue; // settled meanwhile by another delivery: the next claim says so
      const retryInMs = retryDelay(attempts, o.backoff);
      counters.retried += 1;
      events.emit('consumer:retried', { ...at, messageId: key.messageId, attempt: attempts, error, retryInMs });
      if (!(await sleep(retryInMs, signal))) return 'abandoned';
    }
  }

  /**
   * One attempt in one transaction. Throws only for failures that are not the
   * handler's (no connection, inbox missing, COMMIT outcome unknown): the caller
   * repeats the attempt without counting it.
   */
  async function attemptOnce(ready: Ready): Promise<Attempt> {
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
      await invoke(trx, ready, claimed.attempts);
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
   * Batch mode: consecutive records of one partition in one transaction - one statement
   * claims them all in the inbox, each handler runs in turn, one COMMIT. Anything short
   * of that commit (a record that does not decode, a handler that throws, an outage)
   * rolls the batch back, and `settle` takes the records one at a time instead, with
   * the retry and dead-letter rules per record. Resolves how many records, from the
   * first, are settled.
   */
  async function settleBatch(records: InboundRecord[], signal: AbortSignal): Promise<number> {
    if (signal.aborted) return 0;
    const prepared = records.map(prepare);
    const ready = prepared.filter((p): p is Ready => !('settle' in p));
    if (ready.length === records.length && (await attemptBatch(ready))) return records.length;
    let settled = 0;
    for (const p of prepared) {
      if ((await settlePrepared(p, signal)) !== 'done') break;
      settled += 1;
    }
    return settled;
  }

  /** True once the batch committed; false after a rollback (reported when it was not a handler's failure). */
  async function attemptBatch(batch: Ready[]): Promise<boolean> {
    const started = Date.now();
    // A message twice in one run (a republish right behind the original) is claimed
    // once; the later copy is a duplicate when the batch commits.
    const seen = new Set<string>();
    const distinct = batch.filter((r) => !seen.has(r.key.messageId) && seen.add(r.key.messageId));
    const first = batch[0]!.key;
    let claimed = new Map<string, number>();
    let handlersFailed = false;
    let trx: Knex.Transaction | undefined;
    try {
      trx = await o.knex.transaction();
      const rows = await run<{ message_id: string; attempts: number }>(
        trx,
        claimMessages(
          o.inboxTable,
          first,
          distinct.map((r) => r.key),
        ),
      );
      claimed = new Map(rows.map((r) => [r.message_id, r.attempts]));
      handlersFailed = true;
      for (const r of distinct) {
        const attempts = claimed.get(r.key.messageId);
        if (attempts !== undefined) await invoke(trx, r, attempts);
      }
      await checkAlive(trx);
      handlersFailed = false;
      await commit(trx);
    } catch (error) {
      const outage = trx && handlersFailed ? await outageUnder(trx, error) : undefined;
      if (trx) await rollback(trx);
      // A handler's failure is retried and reported record by record; anything else
      // (connection, inbox, an unknown COMMIT outcome) is reported here as well.
      if (outage || (!handlersFailed && !commitFailedByHandler(error))) {
        counters.errors += 1;
        events.emit('consumer:error', { ...first, error: asError(error), fatal: false });
      }
      return false;
    }
    const durationMs = Date.now() - started;
    for (const r of batch) {
      const attempts = claimed.get(r.key.messageId);
      claimed.delete(r.key.messageId); // a later copy of the same id is a duplicate
      const at = position(r.record);
      if (attempts === undefined) {
        counters.duplicates += 1;
        events.emit('consumer:duplicate', { ...at, messageId: r.key.messageId });
      } else {
        counters.processed += 1;
        events.emit('consumer:processed', { ...at, message: r.message as Message, attempts, durationMs });
      }
    }
    return true;
  }

  /** Step 2's handler call, with the transaction the inbox claim is in. */
  async function invoke(trx: Knex.Transaction, ready: Ready, attempt: number): Promise<void> {
    const { message, record } = ready;
    await ready.registered.handler({
      trx: ownedByConsumer(trx),
      message,
      outbox: o.outbox.bind(trx, {
        correlationId: message.headers['correlation-id'] ?? message.id,
        causationId: message.id,
      }),
      attempt,
      record: { topic: record.topic, partition: record.partition, offset: record.offset, timestamp: record.timestamp },
    });
  }

  function unknownType(record: InboundRecord, decoded: Decoded & { ok: true }, signal: AbortSignal) {
    const { type } = decoded.message;
    if (o.onUnknownType === 'ignore') {
      counters.ignored += 1;
      events.emit('consumer:ignored', { ...position(record), messageId: decoded.inboxId, type });
      return Promise.resolve<Settled>('done');
    }
    const error =
      `no handler is registered for message type '${type}' on consumer '${o.name}'; register one with ` +
      `consumer.handle('${type}', ...), or set onUnknownType: 'ignore' to skip such messages`;
    return deadLetter(
      record,
      decoded.inboxId,
      { reason: 'unknown-type', error, errorCode: 'unknown_type', attempts: 0 },
      signal,
    );
  }

  /** Step 4, in one transaction: inbox row `dead` + the dead letter through the outbox. */
  async function deadLetter(
    record: InboundRecord,
    inboxId: string,
    letter: DeadLetter,
    signal: AbortSignal,
  ): Promise<Settled> {
    const at = position(record);
    const key: InboxKey = { ...at, messageId: inboxId };
    const topic = o.deadLetterTopic(record.topic);
    const { full, minimal } = deadLetterMessages(record, inboxId, letter, o.name, topic);
    const result = await untilAvailable(at, signal, () =>
      o.knex.transaction(async (trx) => {
        const [row] = await run(
          trx,
          settleDead(o.inboxTable, key, letter.attempts, `${letter.reason}: ${letter.error}`),
        );
        if (!row) return undefined; // settled meanwhile: nothing to dead-letter
        try {
          return await o.outbox.enqueue(trx, full);
        } catch (error) {
          // Validation runs before any SQL, so the transaction is still usable.
          if (!(error instanceof InvalidMessageError)) throw error;
          return o.outbox.enqueue(trx, minimal(error.message));
        }
      }),
    );
    if (result === ABANDONED) return 'abandoned';
    if (result === undefined) {
      counters.duplicates += 1;
      events.emit('consumer:duplicate', { ...at, messageId: inboxId });
      return 'done';
    }
    counters.deadLettered += 1;
    events.emit('consumer:deadLettered', {
      ...at,
      messageId: inboxId,
      reason: letter.reason,
      error: letter.error,
      attempts: letter.attempts,
      deadLetterId: result.id,
      deadLetterTopic: topic,
    });
    return 'done';
  }

  /** Repeats `step` while it fails, with backoff and a `consumer:error` per failure, until it works or `signal` aborts. */
  async function untilAvailable<T>(
    at: RecordPosition,
    signal: AbortSignal,
    step: () => Promise<T>,
  ): Promise<T | typeof ABANDONED> {
    for (let unavailable = 1; ; unavailable++) {
      if (signal.aborted) return ABANDONED;
      try {
        return await step();
      } catch (error) {
        if (!(await waitOutOutage(error, at, unavailable, signal))) return ABANDONED;
      }
    }
  }

  /** One `consumer:error` per outage (its first failure), then quiet backoff until the step works. */
  async function waitOutOutage(error: unknown, at: RecordPosition, streak: number, signal: AbortSignal) {
    if (streak === 1) {
      counters.errors += 1;
      events.emit('consumer:error', { ...at, error: asError(error), fatal: false });
    }
    return sleep(backoffDelay(streak, OUTAGE_BACKOFF), signal);
  }

  function position(record: InboundRecord): RecordPosition {
    return { consumer: o.name, topic: record.topic, partition: record.partition, offset: record.offset };
  }

  return { settle, settleBatch };
}

/** A record decoded and validated, with its handler: ready for step 2. */
interface Ready {
  key: InboxKey;
  record: InboundRecord;
  message: Message<unknown>;
  registered: RegisteredHandler;
}

/**
 * Whether a failure inside the record's transaction was a database outage: the error
 * says so (see isDatabaseOutage in core), or the transaction's own connection no longer
 * answers, e.g. a handler that caught the driver's error and threw one of its own. A
 * healthy connection answers the probe, or fails it with 25P02 when the handler's
 * statement aborted the transaction: then the failure is the handler's. Returns the
 * error to report for an outage, else undefined.
 */
async function outageUnder(trx: Knex.Transaction, error: unknown): Promise<Error | undefined> {
  if (isDatabaseOutage(error)) return asError(error);
  try {
    await run(trx, transactionAlive);
    return undefined;
  } catch (probeError) {
    return isDatabaseOutage(probeError) ? asError(probeError) : undefined;
  }
}

/**
 * Before COMMIT: in a transaction that an earlier statement aborted this fails with
 * 25P02, where COMMIT would silently roll back (see TransactionAbortedError).
 */
async function checkAlive(trx: Knex.Transaction): Promise<void> {
  try {
    await run(trx, transactionAlive);
  } catch (error) {
    throw sqlStateOf(error) === '25P02' ? new TransactionAbortedError(error) : error;
  }
}

async function commit(trx: Knex.Transaction): Promise<void> {
  // knex's transaction provider reports a failed COMMIT through executionPromise,
  // not through commit()'s own promise.
  await trx.commit();
  await trx.executionPromise;
}

/**
 * The record transaction as handlers see it: the consumer commits it (with the inbox
 * row, and in batch mode with the other records' work), so commit() and rollback()
 * throw instead of ending it behind the consumer's back.
 */
function ownedByConsumer(trx: Knex.Transaction): Knex.Transaction {
  return new Proxy(trx, {
    get(target, property, receiver) {
      if (property === 'commit' || property === 'rollback') return refuseToEnd;
      return Reflect.get(target, property, receiver);
    },
  });
}

function refuseToEnd(): never {
  throw new NonRetriableError(
    'the record transaction belongs to the consumer: do not commit or roll it back in a handler; throw to roll back, or use trx.transaction() for a savepoint',
    { code: 'transaction_owned_by_consumer' },
  );
}

function malformed(reason: string, errorCode: string): DeadLetter {
  return { reason: 'malformed', error: reason, errorCode, attempts: 0 };
}

function codeOf(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.length > 0 ? code : error.name;
}

function describe(error: Error): string {
  const text = `${error.name}: ${error.message}`;
  return text.length <= 2_000 ? text : `${text.slice(0, 1_985)}... (truncated)`;
}

/** Ends a transaction we give up on; a failure here means the connection is gone, which ends it too. */
async function rollback(trx: Knex.Transaction): Promise<void> {
  if (!trx.isCompleted()) await trx.rollback().catch(() => {});
}
