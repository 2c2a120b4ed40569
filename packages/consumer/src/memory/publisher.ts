import { integer, isTopicName, oneOf, TOPIC_RULE } from '@eventual/core';
import { type OutboundRecord, PublishError, type PublishErrorKind, type Publisher } from '@eventual/outbox';
import { partitionForKey } from './partitioner.js';
import type { TopicRegistry } from './topics.js';

/** The in-memory `Publisher`, plus one verb for tests of a relay's error paths. */
export interface MemoryPublisher extends Publisher {
  /**
   * The next `times` (default 1) `publish` calls reject with a `PublishError` of this
   * kind and store nothing, as the Kafka publisher does when the broker is unreachable
   * (`unavailable`), a send fails (`retriable`) or a record can never be published
   * (`permanent`).
   */
  failNext(kind: PublishErrorKind, times?: number): void;
}

const KINDS: readonly PublishErrorKind[] = ['unavailable', 'retriable', 'permanent'];

/**
 * Stores each record on the partition its key hashes to (Kafka's default
 * partitioner), in the order given, and resolves once all are stored: the moment
 * Kafka would acknowledge them. A batch is checked whole before anything is stored,
 * so a rejected publish leaves no partial batch behind. `close()` holds nothing: like
 * the Kafka publisher, which reconnects, it can publish again afterwards.
 */
export function createMemoryPublisher(topics: TopicRegistry): MemoryPublisher {
  const failures: PublishErrorKind[] = [];
  return {
    async publish(records) {
      if (records.length === 0) return;
      const failure = failures.shift();
      if (failure)
        throw new PublishError(failure, `publishing ${records.length} record(s) failed (${failure}): failNext()`);
      records.forEach(checkRecord);
      const timestamp = String(Date.now());
      for (const r of records) {
        const partition = partitionForKey(r.key, topics.partitionCount(r.topic));
        topics.append({ topic: r.topic, partition, key: r.key, value: r.value, headers: { ...r.headers }, timestamp });
      }
    },
    failNext(kind, times = 1) {
      oneOf('failNext kind', kind, KINDS);
      integer('failNext times', times, 1, 1_000_000);
      for (let i = 0; i < times; i += 1) failures.push(kind);
    },
    async close() {},
    // In the same process, the broker is always reachable.
    async verify() {},
  };
}

/** What Kafka would refuse for good is a permanent error, as the Kafka publisher classifies it. */
function checkRecord(record: OutboundRecord, index: number): void {
  const problem = recordProblem(record);
  if (problem)
    throw new PublishError('permanent', `record ${index} (${String(record.id)}) cannot be published: ${problem}`);
}

function recordProblem(record: OutboundRecord): string | undefined {
  if (!isTopicName(record.topic)) return `topic must be ${TOPIC_RULE}, got ${JSON.stringify(record.topic)}`;
  if (typeof record.key !== 'string') return 'key must be a string';
  if (typeof record.value !== 'string') return 'value must be the JSON text of the payload';
  if (Object.values(record.headers ?? {}).some((v) => typeof v !== 'string')) return 'header values must be strings';
  return undefined;
}
