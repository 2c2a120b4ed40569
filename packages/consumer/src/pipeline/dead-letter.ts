import { InvalidMessageError } from '@eventual/outbox';
import { type DeadLetter, deadLetterMessages } from '../dead-letter-message.js';
import { type InboxKey, settleDead } from '../sql/inbox.js';
import { run } from '../sql/statement.js';
import type { InboundRecord } from '../subscriber.js';
import { type PipelineContext, position, type Settled } from './context.js';
import { noteRecord } from './observe.js';
import { ABANDONED, untilAvailable } from './outage.js';

/**
 * Step 4, in one transaction: inbox row `dead` + the dead letter through the outbox,
 * both or neither, so nothing is lost even while Kafka is down and the partition
 * moves on. Repeated through outages until it works; a message another delivery
 * settled meanwhile is a duplicate, and nothing is dead-lettered.
 */
export async function deadLetter(
  ctx: PipelineContext,
  record: InboundRecord,
  inboxId: string,
  letter: DeadLetter,
  signal: AbortSignal,
): Promise<Settled> {
  const { o, events, counters } = ctx;
  const at = position(ctx, record);
  const key: InboxKey = { ...at, messageId: inboxId };
  const topic = o.deadLetterTopic(record.topic);
  const { full, minimal } = deadLetterMessages(record, inboxId, letter, o.name, topic);
  const result = await untilAvailable(ctx, at, signal, () =>
    o.knex.transaction(async (trx) => {
      const [row] = await run(trx, settleDead(o.inboxTable, key, letter.attempts, `${letter.reason}: ${letter.error}`));
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
    noteRecord({ duplicate: true });
    counters.duplicates += 1;
    events.emit('consumer:duplicate', { ...at, messageId: inboxId });
    return 'done';
  }
  noteRecord({ deadLetter: { ...letter, topic, id: result.id } });
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
