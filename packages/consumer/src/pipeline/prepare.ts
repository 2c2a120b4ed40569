import { asError } from '@eventual/core';
import type { Message } from '@eventual/outbox';
import type { DeadLetter } from '../dead-letter-message.js';
import { type Decoded, decodeRecord } from '../decode.js';
import type { InboundRecord } from '../subscriber.js';
import { settlePrepared } from './attempt.js';
import { type PipelineContext, type Prepared, position, type Settled } from './context.js';
import { deadLetter } from './dead-letter.js';
import { holdUnknownType } from './hold.js';
import { noteRecord } from './observe.js';

/**
 * Step 1 for one record: decode and validate it (see decode.ts), find its handler and
 * run the handler's `parse`. Resolves a message ready for its handler, or how the
 * record settles without one: a malformed record or a rejected payload is
 * dead-lettered at once (no retry can fix it); an unknown type is held while the
 * consumer's grace lasts (hold.ts), handled normally if a handler appears meanwhile,
 * and otherwise follows `onUnknownType`. Writes nothing: what it returns does, when
 * settled.
 */
export function prepare(ctx: PipelineContext, record: InboundRecord): Prepared {
  const decoded = decodeRecord(record);
  if (!decoded.ok)
    return {
      settle: (signal) =>
        deadLetter(ctx, record, decoded.inboxId, malformed(decoded.reason, 'malformed_record'), signal),
    };
  const registered = ctx.handlers.get(decoded.message.type);
  if (!registered) return { settle: (signal) => unknownType(ctx, record, decoded, signal) };
  let message: Message<unknown> = decoded.message;
  if (registered.parse) {
    try {
      message = { ...message, payload: registered.parse(decoded.message.payload) };
    } catch (error) {
      const reason = `the payload of ${message.type} was rejected by its parse function: ${asError(error).message}`;
      return {
        settle: (signal) => deadLetter(ctx, record, decoded.inboxId, malformed(reason, 'invalid_payload'), signal),
      };
    }
  }
  return { key: { ...position(ctx, record), messageId: decoded.inboxId }, record, message, registered };
}

async function unknownType(
  ctx: PipelineContext,
  record: InboundRecord,
  decoded: Decoded & { ok: true },
  signal: AbortSignal,
): Promise<Settled> {
  const { o, events, counters } = ctx;
  const { type } = decoded.message;
  const held = await holdUnknownType(ctx, record, decoded.inboxId, type, signal);
  if (held === 'abandoned') return 'abandoned';
  // A handler arrived while the record was held: step 1 again, with its parse.
  if (held === 'handler') return settlePrepared(ctx, prepare(ctx, record), signal);
  if (o.onUnknownType === 'ignore') {
    noteRecord({ ignored: true });
    counters.ignored += 1;
    events.emit('consumer:ignored', { ...position(ctx, record), messageId: decoded.inboxId, type });
    return 'done';
  }
  const error =
    `no handler is registered for message type '${type}' on consumer '${o.name}', which has run longer ` +
    `than unknownTypeGraceMs (${o.unknownTypeGraceMs} ms); register one with ` +
    `consumer.handle('${type}', ...) before start(), or set onUnknownType: 'ignore' to skip such messages`;
  return deadLetter(
    ctx,
    record,
    decoded.inboxId,
    { reason: 'unknown-type', error, errorCode: 'unknown_type', attempts: 0 },
    signal,
  );
}

function malformed(reason: string, errorCode: string): DeadLetter {
  return { reason: 'malformed', error: reason, errorCode, attempts: 0 };
}
