import { describeValue, isMessageType, isTopicName, jsonProblem, TOPIC_RULE } from '@eventual/core';
import { v7 as uuidv7 } from 'uuid';
import { InvalidMessageError, MessageTooLargeError, ReservedHeaderError } from './errors.js';

/** A JSON value as it travels: what `JSON.parse(JSON.stringify(x))` gives back unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** What a producer hands to `enqueue` / `prepare`. */
export interface MessageInput<P = unknown> {
  /** The Kafka topic to publish to: 1-249 of `[a-zA-Z0-9._-]`. */
  topic: string;
  /** Partition key, usually the aggregate id; per-key order is preserved. 1-1024 characters. */
  key: string;
  /** Message type, e.g. `OrderCreated`; consumers dispatch on it. 1-200 of `[A-Za-z0-9_.:/-]`. */
  type: string;
  /** Any JSON-serialisable value. */
  payload: P;
  /** Extra headers (string values). The standard ones below are set by eventual. */
  headers?: Record<string, string>;
  /** Defaults to the message's own id (it starts a new conversation). */
  correlationId?: string;
  /** The id of the message that caused this one; defaults to the message's own id. */
  causationId?: string;
}

/** A message as stored and published: `{ id, topic, key, type, payload, headers }`. */
export interface Message<P = JsonValue> {
  /** A UUID v7 the outbox assigns: the `message-id` header, and the idempotency key downstream. */
  id: string;
  /** The Kafka topic it is published to. */
  topic: string;
  /** The record key: it picks the partition, and messages of one key keep their order. */
  key: string;
  /** What it announces, e.g. `OrderCreated`: the `message-type` header consumers dispatch on. */
  type: string;
  /** The payload, as JSON gives it back (the record value is its JSON text). */
  payload: P;
  /** Every header it carries: the caller's and the standard ones (`HEADER`). */
  headers: Record<string, string>;
}

/**
 * The standard headers eventual writes on every message, by field: `traceparent` (and
 * `tracestate`) only when the producer is traced, from the message's `create` span.
 * `message-id`, `message-type` and the trace headers are reserved (see `RESERVED_HEADERS`).
 */
export const HEADER = {
  id: 'message-id',
  type: 'message-type',
  correlationId: 'correlation-id',
  causationId: 'causation-id',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
} as const;

/** A message as a row of the outbox table holds it (json columns come back parsed). */
export interface MessageRow {
  id: string;
  topic: string;
  key: string;
  type: string;
  payload: JsonValue;
  headers: Record<string, string>;
}

/** The one mapping from a stored row to a message. */
export function rowToMessage(row: MessageRow): Message {
  return { id: row.id, topic: row.topic, key: row.key, type: row.type, payload: row.payload, headers: row.headers };
}

/** A claimed row carries the payload as the exact JSON text the producer stored. */
export function claimedToMessage(row: Omit<MessageRow, 'payload'> & { payload: string }): Message {
  return rowToMessage({ ...row, payload: JSON.parse(row.payload) as JsonValue });
}

/** A message ready for insert: validated, with id, headers and the exact JSON text. */
export interface PreparedRow {
  message: Message<JsonValue>;
  payloadJson: string;
  headersJson: string;
  keyHash: number;
}

/**
 * Validates `input` and builds its row: id, standard headers, and `trace`, the W3C
 * headers of its creation context (the `create` span), when the producer is traced.
 */
export function buildRow(input: MessageInput, limit: number, trace: Record<string, string> | undefined): PreparedRow {
  if (input === null || typeof input !== 'object')
    throw new InvalidMessageError(
      `a message must be an object { topic, key, type, payload }, got ${describeValue(input)}`,
    );
  const { topic, key, type, payload, headers = {} } = input;
  if (!isTopicName(topic)) throw new InvalidMessageError(`topic must be ${TOPIC_RULE}, got ${describeValue(topic)}`);
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024) {
    throw new InvalidMessageError(
      `key must be a non-empty string of at most 1024 characters (usually the aggregate id), got ${describeValue(key)}`,
    );
  }
  if (!isMessageType(type)) {
    throw new InvalidMessageError(
      `type must be 1-200 of [A-Za-z0-9_.:/-], e.g. 'OrderCreated', got ${describeValue(type)}`,
    );
  }
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers))
    throw new InvalidMessageError('headers must be an object of string values');
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string')
      throw new InvalidMessageError(`header '${name}' must be a string, got ${describeValue(value)}`);
    checkHeaderName(name);
  }
  const problem = jsonProblem(payload, 'payload');
  if (problem) throw new InvalidMessageError(problem);
  const id = uuidv7();
  const all: Record<string, string> = {
    ...headers,
    [HEADER.id]: id,
    [HEADER.type]: type,
    [HEADER.correlationId]: conversationId('correlationId', input.correlationId, headers) ?? id,
    [HEADER.causationId]: conversationId('causationId', input.causationId, headers) ?? id,
    ...trace,
  };
  const payloadJson = JSON.stringify(payload);
  const headersJson = JSON.stringify(all);
  const bytes = Buffer.byteLength(payloadJson) + Buffer.byteLength(key) + Buffer.byteLength(headersJson);
  if (bytes > limit) throw new MessageTooLargeError(bytes, limit, `message ${type} for key ${key}`);
  return {
    message: { id, topic, key, type, payload: JSON.parse(payloadJson) as JsonValue, headers: all },
    payloadJson,
    headersJson,
    keyHash: fnv1a(key),
  };
}

/**
 * Headers the outbox always writes itself: a caller's header of the same name, in any
 * letter case, is refused (`ReservedHeaderError`) instead of being silently replaced.
 * `traceparent` and `tracestate` are the message's creation context, its `create`
 * span: a copied one (a forwarded message, a dead letter) would graft the message onto
 * another message's trace position, so a message continues the trace that is active
 * where it is enqueued, and only that. `correlation-id` and `causation-id` are not in
 * it: they may be passed through in headers, but only spelt exactly so.
 */
export const RESERVED_HEADERS: readonly string[] = [HEADER.id, HEADER.type, HEADER.traceparent, HEADER.tracestate];

const STANDARD_HEADERS: readonly string[] = Object.values(HEADER);

/**
 * Kafka header names are case-sensitive bytes, so `Message-Id` would travel beside
 * eventual's `message-id` and readers would take either for the other: a reserved
 * name is refused in any case, another standard name in any case but its own.
 */
function checkHeaderName(name: string): void {
  const lower = name.toLowerCase();
  if (RESERVED_HEADERS.includes(lower)) {
    const from: Record<string, string> = {
      [HEADER.id]: 'the id it assigns, a UUID v7',
      [HEADER.type]: 'from `type`',
    };
    const trace = "from the message's OpenTelemetry create span, a child of the span active at enqueue";
    throw new ReservedHeaderError(
      `header '${name}' is written by the outbox itself (${from[lower] ?? trace}); remove it from headers`,
    );
  }
  if (STANDARD_HEADERS.includes(lower) && name !== lower) {
    const field: Record<string, string> = {
      [HEADER.correlationId]: ' or set the correlationId field',
      [HEADER.causationId]: ' or set the causationId field',
    };
    throw new ReservedHeaderError(
      `header '${name}' differs from the standard '${lower}' only in letter case, so consumers would not read it; ` +
        `spell it '${lower}'${field[lower] ?? ''}`,
    );
  }
}

/**
 * correlation-id / causation-id: the field, else the header of that name (passed
 * through), else undefined (the message's own id). Both, with different values, are
 * refused: one would silently replace the other.
 */
function conversationId(
  field: 'correlationId' | 'causationId',
  value: unknown,
  headers: Record<string, string>,
): string | undefined {
  const name = field === 'correlationId' ? HEADER.correlationId : HEADER.causationId;
  const fromField = optionalId(field, value);
  const fromHeader = optionalId(`header '${name}'`, headers[name]);
  if (fromField !== undefined && fromHeader !== undefined && fromField !== fromHeader)
    throw new ReservedHeaderError(
      `${field} is '${fromField}' but header '${name}' is '${fromHeader}'; set only the ${field} field ` +
        `(in a handler, the bound outbox fills it in from the incoming message unless you set it)`,
    );
  return fromField ?? fromHeader;
}

function optionalId(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
    throw new InvalidMessageError(
      `${name} must be a non-empty string of at most 200 characters, got ${describeValue(value)}`,
    );
  }
  return value;
}

/** 32-bit FNV-1a of the key's UTF-8 bytes: a stable shard assignment across processes. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
