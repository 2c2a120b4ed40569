import { isUuid } from '@eventual/core';
import { HEADER, type JsonValue, type Message } from '@eventual/outbox';
import type { InboundRecord } from './subscriber.js';

export type Decoded = { ok: true; inboxId: string; message: Message } | { ok: false; inboxId: string; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The inbox id of a record that has no usable message id: stable across redeliveries. */
export function positionId(record: InboundRecord): string {
  return `${record.topic}:${record.partition}:${record.offset}`;
}

/**
 * Step 1 of the pipeline: turns a record into a message `{ id, topic, key, type,
 * payload, headers }` as the outbox relay produced it (`id` is the message-id header's
 * UUID in lower case; the headers are as received), or says exactly what is wrong
 * with it. A malformed record is dead-lettered, never retried: no retry can fix it.
 */
export function decodeRecord(record: InboundRecord): Decoded {
  const header = record.headers[HEADER.id];
  // The inbox key is the UUID: an id that is not one (made up, truncated, a counter
  // that restarts) cannot be trusted to name one message, so the record is keyed by
  // its position and dead-lettered. Either letter case is the same UUID (RFC 9562), so
  // the key is the lower-case form: a re-encoded copy is still a duplicate.
  const id = isUuid(header) ? header.toLowerCase() : undefined;
  const inboxId = id ?? positionId(record);
  const malformed = (reason: string): Decoded => ({ ok: false, inboxId, reason });
  if (header === undefined)
    return malformed(`the record has no '${HEADER.id}' header (eventual producers always set it)`);
  if (id === undefined)
    return malformed(
      `the '${HEADER.id}' header must be a UUID (8-4-4-4-12 hex digits, as eventual producers set it), got ${JSON.stringify(header.length > 100 ? `${header.slice(0, 100)}...` : header)}`,
    );
  const type = record.headers[HEADER.type];
  if (type === undefined || type.length === 0)
    return malformed(`the record has no '${HEADER.type}' header, so no handler can be chosen`);
  const correlationId = record.headers[HEADER.correlationId];
  if (correlationId !== undefined && (correlationId.length === 0 || correlationId.length > 200))
    return malformed(`the '${HEADER.correlationId}' header must be 1-200 characters, got ${correlationId.length}`);
  if (record.value === null) return malformed('the record has no value (a tombstone?); eventual messages carry JSON');
  let text: string;
  try {
    text = utf8.decode(record.value);
  } catch {
    return malformed('the record value is not UTF-8 text, so it cannot be JSON');
  }
  let payload: JsonValue;
  try {
    payload = JSON.parse(text) as JsonValue;
  } catch (error) {
    return malformed(`the record value is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  return {
    ok: true,
    inboxId,
    message: { id, topic: record.topic, key: record.key ?? '', type, payload, headers: { ...record.headers } },
  };
}
