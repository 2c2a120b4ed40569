/** A record as a subscriber hands it to the consumer: bytes and strings, nothing decoded yet. */
export interface InboundRecord {
  /** The topic it was read from. */
  topic: string;
  /** Its partition. */
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

/** What the subscriber tells the consumer along with the records it delivers. */
export interface Delivery {
  /** The partition's high watermark when the records were fetched: lag = highWatermark - offset - 1. */
  highWatermark: string;
  /**
   * Aborted when the subscriber is stopping or the partition is being taken away (a
   * rebalance). The consumer then finishes what is in flight, does not start another
   * attempt or wait out a backoff, and leaves the rest of the records unsettled.
   */
  signal: AbortSignal;
}

/** One partition of one topic. */
export interface TopicPartition {
  /** The topic's name. */
  topic: string;
  /** The partition's number, from 0. */
  partition: number;
}

/** What the consumer hands to `subscriber.subscribe`: where records go, and what the subscriber reports. */
export interface SubscriptionHandlers {
  /**
   * The most records `deliver` takes at once: the consumer's `batchSize` (1 unless the
   * consumer runs in batch mode).
   */
  maxRecords: number;
  /**
   * Called with 1 to `maxRecords` consecutive records of one partition, in offset order,
   * one call at a time per partition; never rejects. Resolves how many of them, counted
   * from the first, are settled in the database (processed, a duplicate, dead-lettered
   * or ignored): their offsets may be committed. Fewer than `records.length` means the
   * next one was abandoned (a stop, a rebalance, an outage outlasting them): the
   * subscriber must not commit its offset or any later one, and stops delivering this
   * partition, so it is delivered again (here or on another instance).
   */
  deliver(records: InboundRecord[], delivery: Delivery): Promise<number>;
  /** Problems of the broker connection. `fatal`: the subscriber gave up and delivers nothing more. */
  error(error: Error, fatal: boolean): void;
  /** The partitions this member now owns, after every group (re)join. */
  assigned(partitions: TopicPartition[]): void;
  /**
   * The broker became unreachable after the subscription was running. Called once per
   * outage, however many times the client retries meanwhile (those retries are not
   * reported through `error`); `brokerAvailable` follows once it is back.
   */
  brokerUnavailable(error: Error): void;
  /** The broker is reachable again after a `brokerUnavailable`; `downtimeMs` since it. */
  brokerAvailable(downtimeMs: number): void;
}

/**
 * The consumer's port to a broker: two methods, so another client than kafkajs can be
 * plugged in (the counterpart of the outbox's `Publisher`).
 *
 * Contract: per partition, records are delivered in offset order, one `deliver` call at
 * a time; a record's offset is committed only after `deliver` reported it (and every
 * record before it) settled; partitions may be delivered concurrently.
 */
export interface Subscriber {
  /** The consumer group it joins, when it has one: the `messaging.consumer.group.name` of the consumer's spans. */
  readonly groupId?: string;
  /** Joins the consumer group for `topics` and starts delivering; resolves once running. */
  subscribe(topics: string[], handlers: SubscriptionHandlers): Promise<void>;
  /**
   * Checks, within `timeoutMs`, that the broker can be reached and that every topic
   * exists, without creating any (a broker's auto.create.topics.enable must not make
   * an undeclared topic with default settings). Throws a `BrokerUnreachableError`
   * naming the brokers and the reason, or a `TopicNotFoundError` naming every missing
   * topic; holds nothing open afterwards. The consumer calls it at start, before
   * `subscribe`. Optional: a subscriber without it is taken as ready.
   */
  verify?(topics: string[], timeoutMs: number): Promise<void>;
  /**
   * Stops fetching, aborts the deliveries' signals, waits for records in flight,
   * commits the offsets of those that are done, and leaves the group.
   */
  close(): Promise<void>;
}
