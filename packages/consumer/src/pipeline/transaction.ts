/*
 * The record transaction, which the consumer begins and ends and a handler only
 * writes in: the handler call (step 2) and the two ways the transaction ends, shared
 * by a single record's attempt and a batch's.
 */

import type { Knex } from 'knex';
import { TransactionOwnedByConsumerError } from '../errors.js';
import type { PipelineContext, Ready } from './context.js';

/** Step 2's handler call, with the transaction the inbox claim is in. */
export async function invoke(
  { o }: PipelineContext,
  trx: Knex.Transaction,
  ready: Ready,
  attempt: number,
): Promise<void> {
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

export async function commit(trx: Knex.Transaction): Promise<void> {
  // knex's transaction provider reports a failed COMMIT through executionPromise,
  // not through commit()'s own promise.
  await trx.commit();
  await trx.executionPromise;
}

/** Ends a transaction we give up on; a failure here means the connection is gone, which ends it too. */
export async function rollback(trx: Knex.Transaction): Promise<void> {
  if (!trx.isCompleted()) await trx.rollback().catch(() => {});
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
  throw new TransactionOwnedByConsumerError();
}
