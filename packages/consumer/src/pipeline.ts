import { backoffDelay, InvalidMessageError, type Message } from '@eventual/outbox';
import type { Knex } from 'knex';
import { type DeadLetter, deadLetterMessages } from './dead-letter.js';
import { type Decoded, decodeRecord } from './decode.js';
import { asError, NonRetriableError, sqlState, TransactionAbortedError } from './errors.js';
import type { ConsumerCounters, Events, RecordPosition } from './events.js';
import type { RegisteredHandler } from './handler.js';
import type { ResolvedConsumerOptions } from './options.js';
import { commitFailedByHandler, isRetriable, pause, retryDelay, UNAVAILABLE_BACKOFF } from './retry.js';
import { claimMessage, type InboxKey, recordFailure, settleDead, transactionAlive } from './sql/inbox.js';
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

  async function settle(record: InboundRecord, signal: AbortSignal): Promise<Settled> {
    const at = position(record);
    // 1. decode / validate
    const decoded = decodeRecord(record);
    if (!decoded.ok) return deadLetter(record, decoded.inboxId, malformed(decoded.reason, 'malformed_record'), signal);
    const registered = handlers.get(decoded.message.type);
    if (!registered) return unknownType(record, decoded, signal);
    let message: Message<unknown> = decoded.message;
    if (registered.parse) {
      try {
        message = { ...message, payload: registered.parse(decoded.message.payload) };
      } catch (error) {
        const reason = `the payload of ${message.type} was rejected by its parse function: ${asError(error).message}`;
        return deadLetter(record, decoded.inboxId, malformed(reason, 'invalid_payload'), signal);
      }
    }
    // 2. inbox + handler, 3. retry
    const key: InboxKey = { ...at, messageId: decoded.inboxId };
    for (let unavailable = 1; ; ) {
      if (signal.aborted) return 'abandoned';
      let attempt: Attempt;
      try {
        attempt = await attemptOnce(key, record, message, registered);
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
          record,
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
      if (!(await pause(retryInMs, signal))) return 'abandoned';
    }
  }

  /**
   * One attempt in one transaction. Throws only for failures that are not the
   * handler's (no connection, inbox missing, COMMIT outcome unknown): the caller
   * repeats the attempt without counting it.
   */
  async function attemptOnce(
    key: InboxKey,
    record: InboundRecord,
    message: Message<unknown>,
    registered: RegisteredHandler,
  ): Promise<Attempt> {
    const started = Date.now();
    const trx = await o.knex.transaction();
    let claimed: { attempts: number } | undefined;
    try {
      [claimed] = await run<{ attempts: number }>(trx, claimMessage(o.inboxTable, key));
    } catch (error) {
      await rollback(trx);
      throw error;
    }
    if (!claimed) {
      await rollback(trx); // nothing was written; ends the row lock DO UPDATE took
      return { kind: 'duplicate' };
    }
    try {
      await registered.handler({
        trx,
        message,
        outbox: o.outbox.bind(trx, {
          correlationId: message.headers['correlation-id'] ?? message.id,
          causationId: message.id,
        }),
        attempt: claimed.attempts,
        record: {
          topic: record.topic,
          partition: record.partition,
          offset: record.offset,
          timestamp: record.timestamp,
        },
      });
      if (trx.isCompleted())
        throw new NonRetriableError(
          'the handler committed or rolled back the record transaction itself; throw to roll back instead, ' +
            'and let the consumer commit',
          { code: 'transaction_completed' },
        );
      try {
        await run(trx, transactionAlive);
      } catch (error) {
        throw sqlState(error) === '25P02' ? new TransactionAbortedError(error) : error;
      }
    } catch (error) {
      await rollback(trx);
      return { kind: 'failed', attempts: claimed.attempts, error: asError(error) };
    }
    try {
      // knex's transaction provider reports a failed COMMIT through executionPromise,
      // not through commit()'s own promise.
      await trx.commit();
      await trx.executionPromise;
    } catch (error) {
      if (commitFailedByHandler(error)) return { kind: 'failed', attempts: claimed.attempts, error: asError(error) };
      throw error;
    }
    return { kind: 'processed', attempts: claimed.attempts, durationMs: Date.now() - started };
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

  async function waitOutOutage(error: unknown, at: RecordPosition, streak: number, signal: AbortSignal) {
    counters.errors += 1;
    events.emit('consumer:error', { ...at, error: asError(error), fatal: false });
    return pause(backoffDelay(streak, UNAVAILABLE_BACKOFF), signal);
  }

  function position(record: InboundRecord): RecordPosition {
    return { consumer: o.name, topic: record.topic, partition: record.partition, offset: record.offset };
  }

  return { settle };
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
