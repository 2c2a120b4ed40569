import { asError } from '@eventual/core';
import type { Message } from '@eventual/outbox';
import type { Knex } from 'knex';
import { commitFailedByHandler } from '../retry.js';
import { claimMessages } from '../sql/inbox.js';
import { run } from '../sql/statement.js';
import type { InboundRecord } from '../subscriber.js';
import { settlePrepared } from './attempt.js';
import { isReady, type PipelineContext, position, type Ready } from './context.js';
import { checkAlive, outageUnder } from './outage.js';
import { prepare } from './prepare.js';
import { type RecordSpan, startRecordSpan, traceRecord } from './trace.js';
import { commit, invoke, rollback } from './transaction.js';

/**
 * Batch mode: consecutive records of one partition in one transaction - one statement
 * claims them all in the inbox, each handler runs in turn, one COMMIT. Anything short
 * of that commit (a record that does not decode, a handler that throws, an outage)
 * rolls the batch back, and the records are settled one at a time instead, with the
 * retry and dead-letter rules per record. Resolves how many records, from the first,
 * are settled.
 */
export async function settleBatch(
  ctx: PipelineContext,
  records: InboundRecord[],
  signal: AbortSignal,
): Promise<number> {
  if (signal.aborted) return 0;
  const prepared = records.map((record) => prepare(ctx, record));
  const ready = prepared.filter(isReady);
  if (ready.length === records.length && (await attemptBatch(ctx, ready))) return records.length;
  let settled = 0;
  for (const [i, p] of prepared.entries()) {
    if ((await traceRecord(ctx, records[i]!, () => settlePrepared(ctx, p, signal))) !== 'done') break;
    settled += 1;
  }
  return settled;
}

/**
 * True once the batch committed; false after a rollback (reported when it was not a
 * handler's failure). Each record's handler runs inside its own `process` span, which
 * ends with the batch: a rolled-back batch's spans say so, and the records then get
 * spans of their own as they are settled one by one.
 */
async function attemptBatch(ctx: PipelineContext, batch: Ready[]): Promise<boolean> {
  const { o, events, counters } = ctx;
  const started = Date.now();
  // A message twice in one run (a republish right behind the original) is claimed
  // once; the later copy is a duplicate when the batch commits.
  const seen = new Set<string>();
  const distinct = batch.filter((r) => !seen.has(r.key.messageId) && seen.add(r.key.messageId));
  const first = batch[0]!.key;
  let claimed = new Map<string, number>();
  let handlersFailed = false;
  let trx: Knex.Transaction | undefined;
  const spans = new Map<Ready, RecordSpan | undefined>(batch.map((r) => [r, startRecordSpan(ctx, r.record)]));
  for (const span of spans.values()) span?.span.setAttribute('eventual.consumer.batch', true);
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
      const span = spans.get(r);
      if (attempts === undefined) continue;
      const handle = () => invoke(ctx, trx!, r, attempts);
      await (span ? span.within(handle) : handle());
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
      events.emit('consumer:error', { ...first, instanceId: ctx.o.instanceId, error: asError(error), fatal: false });
    }
    for (const span of spans.values()) {
      span?.span.setAttribute('eventual.consumer.batch_rolled_back', true);
      span?.end(error);
    }
    return false;
  }
  const durationMs = Date.now() - started;
  for (const r of batch) {
    const attempts = claimed.get(r.key.messageId);
    claimed.delete(r.key.messageId); // a later copy of the same id is a duplicate
    const at = position(ctx, r.record);
    const span = spans.get(r);
    spans.delete(r);
    if (attempts === undefined) {
      span?.span.setAttribute('eventual.consumer.duplicate', true);
      counters.duplicates += 1;
      events.emit('consumer:duplicate', { ...at, messageId: r.key.messageId });
    } else {
      span?.span.setAttribute('eventual.consumer.attempts', attempts);
      counters.processed += 1;
      events.emit('consumer:processed', { ...at, message: r.message as Message, attempts, durationMs });
    }
    span?.end();
  }
  return true;
}
