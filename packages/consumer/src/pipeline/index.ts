import type { InboundRecord } from '../subscriber.js';
import { settlePrepared } from './attempt.js';
import { settleBatch } from './batch.js';
import type { PipelineContext, Settled } from './context.js';
import { observeRecord } from './observe.js';
import { prepare } from './prepare.js';

export type { PipelineContext, Settled } from './context.js';

export interface Pipeline {
  /** One record, from step 1 on. */
  settle(record: InboundRecord, signal: AbortSignal): Promise<Settled>;
  /** Consecutive records of one partition in one transaction (batch mode); resolves how many, from the first, are settled. */
  settleBatch(records: InboundRecord[], signal: AbortSignal): Promise<number>;
}

/**
 * The consumer pipeline, in this fixed order:
 *
 *   1. decode / validate  record -> message; malformed records go to step 4 at once;
 *                         a type without a handler is held during the grace after start
 *                         (handled if one is registered meanwhile), then onUnknownType
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
 *
 * Wiring only; the steps are in this folder, each a function of the context:
 * `prepare.ts` (step 1; `hold.ts` for a type without a handler yet), `attempt.ts` (steps 2 and 3 for one record, in
 * `transaction.ts`'s record transaction), `batch.ts` (batch mode, falling back to
 * `attempt.ts` record by record), `dead-letter.ts` (step 4), `outage.ts` (waiting
 * out outages, and telling them apart from a handler's failures), and `observe.ts` (each
 * record settles inside its OpenTelemetry `process` span, and is counted and timed).
 */
export function createPipeline(ctx: PipelineContext): Pipeline {
  return {
    settle: (record, signal) => observeRecord(ctx, record, () => settlePrepared(ctx, prepare(ctx, record), signal)),
    settleBatch: (records, signal) => settleBatch(ctx, records, signal),
  };
}
