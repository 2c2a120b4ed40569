import { TypedEmitter } from '@eventual/core';
import type { Message } from '@eventual/outbox';

/** Why a record went to the dead-letter topic. */
export type DeadLetterReason =
  /** Not decodable: not JSON, no message-id header or one that is not a UUID, no message-type header, or the type's `parse` rejected it. */
  | 'malformed'
  /** No handler is registered for its type (and `onUnknownType` is `dead-letter`). */
  | 'unknown-type'
  /** The handler threw an error with `retriable: false`. */
  | 'non-retriable'
  /** The handler failed `maxAttempts` times. */
  | 'max-attempts';

/** Where a record sits on Kafka. */
export interface RecordPosition {
  /** The consumer's `name`. */
  consumer: string;
  /** The consumer instance that handled it (its `instanceId`). */
  instanceId: string;
  /** The topic the record was read from. */
  topic: string;
  /** Its partition. */
  partition: number;
  /** Its offset, as a decimal string (offsets can exceed 2^53). */
  offset: string;
}

/** Every event a consumer emits, by name. Listeners can never break the consumer. */
export interface ConsumerEventMap {
  /**
   * The handler's transaction committed. Emitted synchronously after COMMIT and before
   * the Kafka offset is committed (a crash in between redelivers the record, which is
   * then skipped as a duplicate).
   */
  'consumer:processed': RecordPosition & { message: Message; attempts: number; durationMs: number };
  /** The inbox already had this message (processed or dead-lettered): skipped. */
  'consumer:duplicate': RecordPosition & { messageId: string };
  /** A handler attempt failed with a retriable error; the next attempt follows after `retryInMs`. */
  'consumer:retried': RecordPosition & { messageId: string; attempt: number; error: Error; retryInMs: number };
  /** The record was dead-lettered: inbox row `dead` and a message to `deadLetterTopic`, in one transaction. */
  'consumer:deadLettered': RecordPosition & {
    messageId: string;
    reason: DeadLetterReason;
    error: string;
    attempts: number;
    deadLetterId: string;
    deadLetterTopic: string;
  };
  /**
   * No handler for the record's type yet, within `unknownTypeGraceMs` of the start: the
   * record is held (its partition waits, nothing is written) until a handler is
   * registered or `until`, when `onUnknownType` decides. Once per hold, not per check.
   */
  'consumer:held': RecordPosition & { messageId: string; type: string; until: Date };
  /** No handler for the type and `onUnknownType` is `ignore`: skipped without a trace in the inbox. */
  'consumer:ignored': RecordPosition & { messageId: string; type: string };
  /**
   * Not the message's fault (database or broker unreachable, schema missing): the
   * record is retried with backoff, without counting an attempt, until it works.
   * `fatal`: the subscriber gave up and the consumer receives nothing more.
   */
  'consumer:error': Partial<RecordPosition> & { consumer: string; instanceId: string; error: Error; fatal: boolean };
  /**
   * The broker became unreachable while the consumer ran. Once per outage, however
   * often the client retries; records wait, nothing is dead-lettered for it.
   */
  'consumer:brokerUnavailable': { consumer: string; instanceId: string; error: Error };
  /** The broker is reachable again after a `consumer:brokerUnavailable`; `downtimeMs` since it. */
  'consumer:brokerAvailable': { consumer: string; instanceId: string; downtimeMs: number };
  /** The partitions this instance owns after a group (re)join. */
  'consumer:assigned': {
    consumer: string;
    instanceId: string;
    partitions: Array<{ topic: string; partition: number }>;
  };
  /** A retention cleanup run deleted this many settled inbox rows. */
  'inbox:cleaned': { consumer: string; instanceId: string; deleted: number };
}

/** The name of a consumer event, for `consumer.on(name, listener)`. */
export type ConsumerEventName = keyof ConsumerEventMap;

/**
 * The consumer's emitter: core's TypedEmitter, so a listener that throws or rejects is
 * reported once through the logger and never interrupts the delivery that emitted.
 */
export class Events extends TypedEmitter<ConsumerEventMap> {}

/** Running totals a metrics exporter can read at any time. */
export interface ConsumerCounters {
  /** Records whose handler transaction committed (`consumer:processed`). */
  processed: number;
  /** Records skipped because the inbox already had their message (`consumer:duplicate`). */
  duplicates: number;
  /** Failed attempts that were retried. */
  retried: number;
  /** Records sent to their dead-letter topic (`consumer:deadLettered`). */
  deadLettered: number;
  /** Records of a type without a handler skipped under `onUnknownType: 'ignore'` (`consumer:ignored`). */
  ignored: number;
  /** Records held for want of a handler (see `consumer:held`). */
  held: number;
  /** Infrastructure errors (each `consumer:error`), and retention cleanup runs that failed. */
  errors: number;
}
