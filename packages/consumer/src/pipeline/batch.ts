import { asError } from '@eventual/core';
import type { Message } from '@eventual/outbox';
import type { Knex } from 'knex';
import { commitFailedByHandler } from '../retry.js';
import { claimMessages } from '../sql/inbox.js';
import { run } from '../sql/statement.js';
import type { InboundRecord } from '../subscriber.js';
import { settlePrepared } from './attempt.js';
import { isReady, type PipelineContext, position, type Ready } from './context.js';
import { observeRecord, observeRecordStart, type RecordObservation } from './observe.js';
import { checkAlive, outageUnder } from './outage.js';
import { prepare } from './prepare.js';
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
  // A batch attempt counted the deliveries already; the records it rolled back are the same deliveries.
  const attempted = ready.length === records.length;
  if (attempted && (await attemptBatch(ctx, ready))) return records.length;
  let settled = 0;
  for (const [i, p] of prepared.entries()) {
    if ((await observeRecord(ctx, records[i]!, () => settlePrepared(ctx, p, signal), !attempted)) !== 'done') break;
    settled += 1;
  }
  return settled;
}

/**
 * True once the batch committed; false after a rollback (reported when it was not a
 * handler's failure). Each record is observed on its own (observe.ts): its handler runs
 * inside its own `process` span, which ends with the batch; a rolled-back batch's spans
 * say so, and the records then get spans of their own as they are settled one by one.
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
  const observed = new Map<Ready, RecordObservation | undefined>(
    batch.map((r) => [r, observeRecordStart(ctx, r.record, { delivered: true, batch: true })]),
  );
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
      if (attempts === undefined) continue;
      const handle = () => invoke(ctx, trx!, r, attempts);
      const observation = observed.get(r);
      await (observation ? observation.within(handle) : handle());
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
    for (const observation of observed.values()) observation?.end({ rolledBack: error });
    return false;
  }
  const durationMs = Date.now() - started;
  for (const r of batch) {
    const attempts = claimed.get(r.key.messageId);
    claimed.delete(r.key.messageId); // a later copy of the same id is a duplicate
    const at = position(ctx, r.record);
    const observation = observed.get(r);
    if (attempts === undefined) {
      observation?.note({ duplicate: true });
      counters.duplicates += 1;
      events.emit('consumer:duplicate', { ...at, messageId: r.key.messageId });
    } else {
      observation?.note({ attempts });
      counters.processed += 1;
      events.emit('consumer:processed', { ...at, message: r.message as Message, attempts, durationMs });
    }
    observation?.end('done');
  }
  return true;
}
