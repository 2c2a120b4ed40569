import { createHash } from 'node:crypto';
import type { Delivery, InboundRecord, SubscriptionHandlers, TopicPartition } from '@eventual/consumer';
import type { OutboundRecord } from '@eventual/outbox';

/** How a probe answers one `deliver` call: the number of records settled, from the first. */
export type Decide = (records: InboundRecord[], delivery: Delivery) => number | Promise<number>;

export interface DeliverCall {
  records: InboundRecord[];
  settled: number;
  highWatermark: string;
  /** Whether the delivery's signal was aborted when `deliver` returned. */
  aborted: boolean;
}

/**
 * Subscription handlers that record every `deliver` call, assignment and error, and
 * check the port's per-partition rule as they go: a second `deliver` for a partition
 * while one is in flight is recorded in `overlaps`.
 */
export function probe(decide: Decide = (records) => records.length, maxRecords = 1) {
  const calls: DeliverCall[] = [];
  const assignments: TopicPartition[][] = [];
  const errors: Error[] = [];
  const overlaps: string[] = [];
  const outages: string[] = [];
  const inFlight = new Set<string>();
  const handlers: SubscriptionHandlers = {
    maxRecords,
    async deliver(records, delivery) {
      const partition = `${records[0]!.topic}/${records[0]!.partition}`;
      if (inFlight.has(partition)) overlaps.push(`${partition}@${records[0]!.offset}`);
      inFlight.add(partition);
      try {
        const settled = await decide(records, delivery);
        calls.push({ records, settled, highWatermark: delivery.highWatermark, aborted: delivery.signal.aborted });
        return settled;
      } finally {
        inFlight.delete(partition);
      }
    },
    error: (error) => errors.push(error),
    assigned: (partitions) => assignments.push(partitions),
    brokerUnavailable: (error) => outages.push(`unavailable: ${error.message}`),
    brokerAvailable: () => outages.push('available'),
  };
  return {
    handlers,
    calls,
    assignments,
    errors,
    overlaps,
    /** Broker outages reported after subscribe: `unavailable: <message>`, then `available`. */
    outages,
    /** Every record delivered, in delivery order, redeliveries included. */
    delivered: () => calls.flatMap((c) => c.records),
    /** The records reported settled, in delivery order. */
    settled: () => calls.flatMap((c) => c.records.slice(0, c.settled)),
    /** The partitions of the latest assignment, as `topic/partition` strings, sorted. */
    owned: () => (assignments.at(-1) ?? []).map((tp) => `${tp.topic}/${tp.partition}`).sort(),
  };
}

export type Probe = ReturnType<typeof probe>;

/**
 * An eventual-shaped record: JSON value, the message headers, plus text that is not
 * ASCII. Its message id is a UUID (a consumer dead-letters anything else), derived from
 * key and n, so the same record built twice is the same record.
 */
export function outbound(topic: string, key: string, n: number, extraHeaders: Record<string, string> = {}) {
  const id = uuidOf(`${key}#${n}`);
  const record: OutboundRecord = {
    id,
    topic,
    key,
    value: JSON.stringify({ key, n, note: 'grüße ✓ 日本' }),
    headers: { 'message-id': id, 'message-type': 'ContractTested', ...extraHeaders },
  };
  return record;
}

/** The `message-id` header of a delivered record: what the tests identify records by. */
export const idOf = (record: InboundRecord): string => record.headers['message-id'] ?? '?';

/** `n` of a delivered record's JSON value. */
export const seqOf = (record: InboundRecord): number => (JSON.parse(record.value!.toString('utf8')) as { n: number }).n;

/** A stable UUID-shaped id (8-4-4-4-12 hex digits) for a name. */
function uuidOf(name: string): string {
  const hex = createHash('sha256').update(name).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
