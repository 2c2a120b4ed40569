import { isMessageType } from '@eventual/core';
import { HEADER, type JsonValue, type MessageInput } from '@eventual/outbox';
import type { DeadLetterReason } from './events.js';
import type { InboundRecord } from './subscriber.js';

/** Headers a dead letter carries on top of the original record's own headers. */
export const DLQ_HEADER = {
  reason: 'dlq-reason',
  error: 'dlq-error',
  errorCode: 'dlq-error-code',
  attempts: 'dlq-attempts',
  consumer: 'dlq-consumer',
  originalTopic: 'dlq-original-topic',
  originalPartition: 'dlq-original-partition',
  originalOffset: 'dlq-original-offset',
  /** The original message id, or `<topic>:<partition>:<offset>` when it had none. */
  originalMessageId: 'dlq-original-message-id',
  /** How the payload holds the original value: `json`, `text`, `base64`, `null` or `omitted`. */
  valueEncoding: 'dlq-value-encoding',
} as const;

export interface DeadLetter {
  reason: DeadLetterReason;
  /** What went wrong, for people: the error message or the decoding problem. */
  error: string;
  /** A stable code: a NonRetriableError's `businessCode`, the error's `code` (EventualError), else its name, else the reason. */
  errorCode: string;
  /** Handler attempts made (0 when the record never reached a handler). */
  attempts: number;
}

const MAX_ERROR_CHARS = 2_000;
const STANDARD = new Set<string>(Object.values(HEADER));
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The message that carries a record to its dead-letter topic, and a minimal fallback
 * without the original value and headers for when the full one cannot be stored
 * (larger than the outbox's maxMessageBytes): the record itself stays on Kafka at the
 * topic, partition and offset the headers name.
 */
export function deadLetterMessages(
  record: InboundRecord,
  inboxId: string,
  letter: DeadLetter,
  consumer: string,
  topic: string,
): { full: MessageInput<JsonValue>; minimal: (why: string) => MessageInput<JsonValue> } {
  const original = record.headers;
  const originalType = original[HEADER.type];
  const type = isMessageType(originalType) ? originalType : 'eventual.DeadLetter';
  const correlation = original[HEADER.correlationId];
  const dlqHeaders: Record<string, string> = {
    [DLQ_HEADER.reason]: letter.reason,
    [DLQ_HEADER.error]: truncate(letter.error),
    [DLQ_HEADER.errorCode]: truncate(letter.errorCode, 200),
    [DLQ_HEADER.attempts]: String(letter.attempts),
    [DLQ_HEADER.consumer]: consumer,
    [DLQ_HEADER.originalTopic]: record.topic,
    [DLQ_HEADER.originalPartition]: String(record.partition),
    [DLQ_HEADER.originalOffset]: record.offset,
    [DLQ_HEADER.originalMessageId]: inboxId,
  };
  const base = {
    topic,
    // The original key keeps a key's dead letters in order on the DLQ topic.
    key: record.key !== null && record.key.length > 0 && record.key.length <= 1024 ? record.key : inboxId,
    type,
    correlationId:
      correlation !== undefined && correlation.length > 0 && correlation.length <= 200 ? correlation : undefined,
    causationId: inboxId.length <= 200 ? inboxId : undefined,
  };
  // The outbox writes the standard headers itself and refuses them (in any letter
  // case) in `headers`. The trace headers are among them: the dead letter is enqueued
  // inside the record's `process` span, so its own creation context continues the
  // record's trace, one hop further.
  const copied = Object.fromEntries(Object.entries(original).filter(([name]) => !STANDARD.has(name.toLowerCase())));
  const { payload, encoding } = valueAsPayload(record.value);
  return {
    full: { ...base, payload, headers: { ...copied, ...dlqHeaders, [DLQ_HEADER.valueEncoding]: encoding } },
    minimal: (why) => ({
      ...base,
      payload: null,
      headers: {
        ...dlqHeaders,
        [DLQ_HEADER.valueEncoding]: 'omitted',
        'dlq-omitted-because': truncate(why, 500),
      },
    }),
  };
}

function valueAsPayload(value: Buffer | null): { payload: JsonValue; encoding: string } {
  if (value === null) return { payload: null, encoding: 'null' };
  let text: string;
  try {
    text = utf8.decode(value);
  } catch {
    return { payload: value.toString('base64'), encoding: 'base64' };
  }
  try {
    return { payload: JSON.parse(text) as JsonValue, encoding: 'json' };
  } catch {
    return { payload: text, encoding: 'text' };
  }
}

/** At most `max` characters, marked when cut: for error texts in headers and inbox rows. */
export function truncate(text: string, max = MAX_ERROR_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max - 15)}... (truncated)`;
}
