import { InvalidOptionError, integer, topicName } from '@eventual/core';
import type { InboundRecord } from '../subscriber.js';

/** A record as the in-memory broker keeps it, for a test's assertions. */
export interface MemoryRecord {
  /** The topic it was published to. */
  readonly topic: string;
  /** The partition its key hashes to (see `partitionForKey`). */
  readonly partition: number;
  /** Decimal string, from 0 per partition, as on Kafka. */
  readonly offset: string;
  /** The record key: the message key. */
  readonly key: string;
  /** The value as published: the message's JSON text. */
  readonly value: string;
  /** The headers as published, the standard ones included. */
  readonly headers: Readonly<Record<string, string>>;
  /** Milliseconds since the epoch when it was stored, as a string. */
  readonly timestamp: string;
}

/**
 * One partition: an append-only array whose index is the offset. Readers waiting for
 * the next offset are woken by `append`, so an idle subscriber costs no timer.
 */
export class PartitionLog {
  readonly #records: MemoryRecord[] = [];
  readonly #waiting = new Set<() => void>();

  /** The log end offset: the offset the next record gets (Kafka's high watermark). */
  get end(): number {
    return this.#records.length;
  }

  append(record: Omit<MemoryRecord, 'offset'>): MemoryRecord {
    const stored = Object.freeze({ ...record, offset: String(this.#records.length) });
    this.#records.push(stored);
    for (const wake of this.#waiting) wake();
    this.#waiting.clear();
    return stored;
  }

  read(from: number, max: number): MemoryRecord[] {
    return this.#records.slice(from, from + max);
  }

  /** Resolves once a record exists at `offset`, or when `signal` aborts. */
  async waitFor(offset: number, signal: AbortSignal): Promise<void> {
    if (offset < this.end || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.#waiting.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#waiting.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/**
 * The topics of one broker. A topic is created on first use (publish or subscribe)
 * with the broker's default partition count, like a broker with
 * auto.create.topics.enable; `create` fixes another count up front, as a test's
 * setup creates topics on Kafka.
 */
export class TopicRegistry {
  readonly #topics = new Map<string, PartitionLog[]>();
  /** Every record of a topic in the order it was stored, across partitions. */
  readonly #stored = new Map<string, MemoryRecord[]>();

  constructor(readonly defaultPartitions: number) {}

  create(name: string, partitions: number): PartitionLog[] {
    topicName('topic', name);
    integer(`partitions of topic ${name}`, partitions, 1, 10_000);
    const existing = this.#topics.get(name);
    if (existing && existing.length !== partitions)
      throw new InvalidOptionError(
        `topic ${name} already exists with ${existing.length} partition(s), not ${partitions}: ` +
          'create it before anything publishes to it or subscribes to it',
      );
    if (existing) return existing;
    const logs = Array.from({ length: partitions }, () => new PartitionLog());
    this.#topics.set(name, logs);
    this.#stored.set(name, []);
    return logs;
  }

  /** Whether the topic exists (was created, published to or subscribed to). */
  has(name: string): boolean {
    return this.#topics.has(name);
  }

  partitions(name: string): PartitionLog[] {
    return this.#topics.get(name) ?? this.create(name, this.defaultPartitions);
  }

  partitionCount(name: string): number {
    return this.partitions(name).length;
  }

  append(record: Omit<MemoryRecord, 'offset'>): void {
    const stored = this.partitions(record.topic)[record.partition]!.append(record);
    this.#stored.get(record.topic)!.push(stored);
  }

  records(name: string): MemoryRecord[] {
    return [...(this.#stored.get(name) ?? [])];
  }
}

/**
 * What a subscriber hands to `deliver`: fresh copies, so a handler that mutates a
 * record's value or headers cannot change what a redelivery or another group sees.
 */
export function toInbound(record: MemoryRecord): InboundRecord {
  return {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    key: record.key,
    value: Buffer.from(record.value, 'utf8'),
    headers: { ...record.headers },
    timestamp: record.timestamp,
  };
}
