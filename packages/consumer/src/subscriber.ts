/** A record as a subscriber hands it to the consumer: bytes and strings, nothing decoded yet. */
export interface InboundRecord {
  topic: string;
  partition: number;
  /** The record's offset, as a decimal string (offsets can exceed 2^53). */
  offset: string;
  /** The record key as UTF-8 text, or null when the record has none. */
  key: string | null;
  /** The record value as bytes (eventual producers put the JSON payload text here), or null. */
  value: Buffer | null;
  /** Header values as UTF-8 text; a header sent more than once keeps its last value. */
  headers: Record<string, string>;
  /** Broker or producer timestamp, milliseconds since the epoch, as a string. */
  timestamp: string;
}

/** What the subscriber tells the consumer along with one record. */
export interface Delivery {
  /** The partition's high watermark when the record was fetched: lag = highWatermark - offset - 1. */
  highWatermark: string;
  /**
   * Aborted when the subscriber is stopping or the partition is being taken away (a
   * rebalance). The consumer then finishes what is in flight, does not start another
   * attempt or wait out a backoff, and answers `abandoned`.
   */
  signal: AbortSignal;
}

/**
 * `done`: the record is settled in the database (processed, a duplicate, dead-lettered
 * or ignored); its offset may be committed. `abandoned`: it is not settled; the
 * subscriber must not commit its offset (or any later one) and stops delivering this
 * partition, so the record is delivered again (here or on another instance).
 */
export type DeliveryOutcome = 'done' | 'abandoned';

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface SubscriptionHandlers {
  /** Called for one record at a time per partition, in offset order; never rejects. */
  deliver(record: InboundRecord, delivery: Delivery): Promise<DeliveryOutcome>;
  /** Problems of the broker connection. `fatal`: the subscriber gave up and delivers nothing more. */
  error(error: Error, fatal: boolean): void;
  /** The partitions this member now owns, after every group (re)join. */
  assigned(partitions: TopicPartition[]): void;
}

/**
 * The consumer's port to a broker: two methods, so another client than kafkajs can be
 * plugged in (the counterpart of the outbox's `Publisher`).
 *
 * Contract: per partition, records are delivered one at a time in offset order; a
 * record's offset is committed only after `deliver` resolved `done` for it (and for
 * every record before it); partitions may be delivered concurrently.
 */
export interface Subscriber {
  /** Joins the consumer group for `topics` and starts delivering; resolves once running. */
  subscribe(topics: string[], handlers: SubscriptionHandlers): Promise<void>;
  /**
   * Stops fetching, aborts the deliveries' signals, waits for records in flight,
   * commits the offsets of those that are done, and leaves the group.
   */
  close(): Promise<void>;
}
