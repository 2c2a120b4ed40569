import {
  InvalidOptionError,
  integer,
  knownKeys,
  nonEmptyString,
  OutageTracker,
  object,
  sleep,
  TopicNotFoundError,
} from '@eventual/core';
import { classifyKafkaError, missingKafkaTopics, withKafkaAdmin } from '@eventual/outbox';
import type { Consumer, ConsumerConfig, EachBatchPayload, IHeaders, Kafka, KafkaMessage } from 'kafkajs';
import type { InboundRecord, Subscriber, SubscriptionHandlers } from './subscriber.js';

/** Options of `createKafkaSubscriber`; an unknown key or a wrong value throws `InvalidOptionError`. */
export interface KafkaSubscriberOptions {
  /** A kafkajs client; the subscriber creates and owns its consumer. */
  kafka: Kafka;
  /** The Kafka consumer group; instances with the same group share the partitions. */
  groupId: string;
  /**
   * Partitions handled at the same time, each strictly in offset order. Each one in
   * flight holds a database connection for its transaction: keep the knex pool larger.
   * Default 4.
   */
  partitionsConcurrently?: number;
  /**
   * Where a group with no committed offset starts. Default true (the earliest record),
   * so messages produced before the group first ran are not skipped.
   */
  fromBeginning?: boolean;
  /**
   * kafkajs consumer settings (sessionTimeout, heartbeatInterval, maxWaitTimeInMs, ...).
   * eventual's defaults: `maxWaitTimeInMs` 1,000, and `retry.restartOnFailure` always
   * restarting, so the consumer never stops silently after a crash kafkajs deems fatal.
   */
  consumer?: Omit<ConsumerConfig, 'groupId'>;
}

/** How often a long delivery heartbeats and checks for stop or revocation. */
const WATCH_MS = 100;

/**
 * The default subscriber: a kafkajs consumer group.
 *
 * Records are taken batch by batch (`eachBatch`) and handed to the consumer in runs of
 * up to its `batchSize` (one record at a time unless it runs in batch mode); after
 * each run, the offset of the last record the consumer settled is resolved and
 * committed (autoCommitThreshold 1), so a crash redelivers at most the run in flight.
 * A record left unsettled is not resolved: kafkajs fetches the partition again from it.
 *
 * kafkajs only heartbeats between runs, so while one run takes long (a slow
 * handler, a retry backoff) a timer heartbeats for it; when that heartbeat reports a
 * rebalance, or the consumer is stopping, the delivery's signal is aborted, the attempt
 * in flight finishes, and the rebalance error is rethrown so kafkajs rejoins the group.
 */
export function createKafkaSubscriber(options: KafkaSubscriberOptions): Subscriber {
  object('createKafkaSubscriber options', options);
  knownKeys('createKafkaSubscriber', options, [
    'kafka',
    'groupId',
    'partitionsConcurrently',
    'fromBeginning',
    'consumer',
  ]);
  if (!options.kafka || typeof (options.kafka as { consumer?: unknown }).consumer !== 'function')
    throw new InvalidOptionError('kafka must be a kafkajs client: new Kafka({ clientId, brokers })');
  const groupId = nonEmptyString('groupId', options.groupId, 249);
  const concurrency = integer('partitionsConcurrently', options.partitionsConcurrently ?? 4, 1, 1_000);
  const fromBeginning = options.fromBeginning ?? true;
  if (typeof fromBeginning !== 'boolean') throw new InvalidOptionError('fromBeginning must be true or false');
  if (options.consumer !== undefined) object('consumer', options.consumer);
  if (options.consumer && 'groupId' in options.consumer)
    throw new InvalidOptionError('set the group with groupId, not consumer.groupId');

  let consumer: Consumer | undefined;
  let closing: Promise<void> | undefined;

  return {
    groupId,
    async subscribe(topics, handlers) {
      if (consumer)
        throw new InvalidOptionError(
          `the Kafka subscriber of group ${groupId} is already in use; create one per consumer`,
        );
      const retry = options.consumer?.retry ?? {};
      const c = options.kafka.consumer({
        maxWaitTimeInMs: 1_000,
        ...options.consumer,
        groupId,
        // kafkajs gives up for good after a crash it deems not retriable; a consumer
        // that silently stops is worse than one that keeps trying and reports why.
        retry: { ...retry, restartOnFailure: retry.restartOnFailure ?? (async () => true) },
      });
      consumer = c;
      // kafkajs crashes and restarts the consumer on every failed retry cycle while the
      // broker is away: that is one outage, reported once, not one error per restart.
      const outage = new OutageTracker();
      c.on(c.events.CRASH, ({ payload }) => {
        if (payload.restart && classifyKafkaError(payload.error) === 'unavailable') {
          if (outage.begin()) handlers.brokerUnavailable(payload.error);
          return;
        }
        handlers.error(payload.error, !payload.restart);
      });
      c.on(c.events.GROUP_JOIN, ({ payload }) => {
        const downtimeMs = outage.end();
        if (downtimeMs !== undefined) handlers.brokerAvailable(downtimeMs);
        handlers.assigned(
          Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
            partitions.map((partition) => ({ topic, partition })),
          ),
        );
      });
      // start() already checked the brokers and topics: a failure here is a broker
      // going away under us (its coordinator killed mid-join), tried again for a while.
      for (let attempt = 0; ; attempt++) {
        try {
          await c.connect();
          await c.subscribe({ topics, fromBeginning });
          break;
        } catch (error) {
          const delay = SUBSCRIBE_RETRY_MS[attempt];
          if (closing || delay === undefined || classifyKafkaError(error) !== 'unavailable') throw error;
          await sleep(delay);
        }
      }
      await c.run({
        autoCommit: true,
        autoCommitThreshold: 1,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: concurrency,
        eachBatch: (payload) => deliverBatch(payload, handlers),
      });
    },
    async close() {
      closing ??= consumer ? consumer.disconnect() : Promise.resolve();
      await closing;
    },
    async verify(topics, timeoutMs) {
      const what = `consumer group ${groupId}`;
      const missing = await withKafkaAdmin(options.kafka, what, timeoutMs, (admin) =>
        missingKafkaTopics(admin, topics),
      );
      if (missing.length > 0) throw new TopicNotFoundError(what, missing);
    },
  };
}

/** Pauses between tries of connect + subscribe while the broker is unavailable (3 s in all). */
const SUBSCRIBE_RETRY_MS = [200, 400, 800, 1_600];

async function deliverBatch(payload: EachBatchPayload, handlers: SubscriptionHandlers): Promise<void> {
  const { batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale } = payload;
  const controller = new AbortController();
  let heartbeatError: unknown;
  const watch = setInterval(() => {
    if (!isRunning() || isStale()) controller.abort();
    heartbeat().catch((error: unknown) => {
      heartbeatError ??= error;
      controller.abort();
    });
  }, WATCH_MS);
  try {
    const { messages } = batch;
    for (let from = 0; from < messages.length; ) {
      if (controller.signal.aborted || !isRunning() || isStale()) break;
      const chunk = messages.slice(from, from + handlers.maxRecords);
      const settled = await handlers.deliver(
        chunk.map((message) => toRecord(batch.topic, batch.partition, message)),
        { highWatermark: batch.highWatermark, signal: controller.signal },
      );
      if (settled > 0) {
        resolveOffset(chunk[settled - 1]!.offset);
        await commitOffsetsIfNecessary();
      }
      if (settled < chunk.length) break;
      from += chunk.length;
    }
  } finally {
    clearInterval(watch);
  }
  // A rebalance seen while a record was in flight: let kafkajs rejoin now.
  if (heartbeatError !== undefined) throw heartbeatError;
}

function toRecord(topic: string, partition: number, message: KafkaMessage): InboundRecord {
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key ? message.key.toString('utf8') : null,
    value: message.value ?? null,
    headers: headerText(message.headers ?? {}),
    timestamp: message.timestamp,
  };
}

function headerText(headers: IHeaders): Record<string, string> {
  const text: Record<string, string> = {};
  for (const [name, raw] of Object.entries(headers)) {
    const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    if (value !== undefined) text[name] = Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
  }
  return text;
}
