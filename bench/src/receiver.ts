import type { Kafka } from 'kafkajs';
import { sleep, uniqueName } from './fixtures.js';

export interface Receiver {
  /** message-id header -> performance.now() when the consumer handed the record to us. */
  readonly receivedAt: Map<string, number>;
  /** Resolves once every id is received; rejects after `timeoutMs` saying how many are missing. */
  waitFor(ids: Iterable<string>, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A plain kafkajs consumer in this process noting when each record becomes readable:
 * the "readable in Kafka" end of every latency measurement, identical for the outbox
 * and its baseline. Fetches wait at most 100 ms on an idle topic and return as soon as
 * one byte is there (minBytes 1), so a fetch in flight never delays a record.
 */
export async function startReceiver(kafka: Kafka, topic: string): Promise<Receiver> {
  const receivedAt = new Map<string, number>();
  const consumer = kafka.consumer({ groupId: uniqueName('latency'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const at = performance.now();
      const id = message.headers?.['message-id']?.toString();
      if (id !== undefined && !receivedAt.has(id)) receivedAt.set(id, at);
    },
  });
  await joined;
  return {
    receivedAt,
    async waitFor(ids, timeoutMs) {
      const wanted = [...ids];
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const missing = wanted.filter((id) => !receivedAt.has(id)).length;
        if (missing === 0) return;
        if (performance.now() > deadline) throw new Error(`${missing} of ${wanted.length} records never arrived`);
        await sleep(50);
      }
    },
    stop: () => consumer.disconnect(),
  };
}
