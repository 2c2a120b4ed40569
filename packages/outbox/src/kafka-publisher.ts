import { BrokerUnreachableError, TRACE_HEADER } from '@eventual/core';
import kafkajs, { type Kafka, type Producer, type ProducerConfig, type TopicMessages } from 'kafkajs';
import { PublishError, type PublishErrorKind } from './errors.js';
import { withKafkaAdmin } from './kafka-connect.js';
import type { Publisher } from './publisher.js';

// Off the default export: Node's ESM loader does not see all of kafkajs' CommonJS exports.
const { Partitioners } = kafkajs;

/** Options of `createKafkaPublisher`. */
export interface KafkaPublisherOptions {
  /** A kafkajs client; the publisher creates and owns its producer. */
  kafka: Kafka;
  /**
   * Producer settings. eventual always sends with one request in flight per broker
   * (per-partition order) and acks from all in-sync replicas, and never with kafkajs'
   * idempotent producer; these cannot be overridden. `retry` defaults to 3 retries from
   * 100 ms up to 2 s (a `retry` given here replaces it whole).
   *
   * Why not idempotent: in the 3-broker rolling-restart test kafkajs 2.2.4's idempotent
   * producer answered "out of order sequence number" and then acknowledged records it
   * never wrote (2 of 4,404 marked published, absent from Kafka). It rolls a partition's
   * sequence back after a failed request, and concurrent sends to one partition through
   * two brokers (its leader moving) reuse sequence numbers the broker has already seen,
   * which it acknowledges as duplicates without writing them. A plain producer's retry
   * can only write a record twice, and consumers drop the copy by message id.
   */
  producer?: Omit<ProducerConfig, 'idempotent' | 'maxInFlightRequests'>;
}

/** Protocol errors that no retry can fix: the message itself is unpublishable. */
const PERMANENT = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_TOPIC_EXCEPTION',
  'INVALID_RECORD',
  'TOPIC_AUTHORIZATION_FAILED',
  'POLICY_VIOLATION',
  'INVALID_REQUIRED_ACKS',
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
]);

/** Errors that say "the broker is not reachable or not ready", not "this message is bad". */
const UNAVAILABLE_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSLockTimeout',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSNotImplemented',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSGroupCoordinatorNotFound',
]);
const UNAVAILABLE_TYPES = new Set([
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'BROKER_NOT_AVAILABLE',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'KAFKA_STORAGE_ERROR',
  // kafkajs' names for the group coordinator moving or loading after a broker restart.
  'GROUP_LOAD_IN_PROGRESS',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR_FOR_GROUP',
  'NOT_CONTROLLER',
]);
/**
 * The same coordinator errors once kafkajs has rewrapped them in a plain KafkaJSError
 * (consumerGroup.js does, to restart a join): only their message survives.
 */
const UNAVAILABLE_MESSAGES = [
  /^The coordinator is loading and hence can't process requests for this group$/,
  /^The group coordinator is not available$/,
  /^This is not the correct coordinator for this group$/,
  /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|connect/i,
];

/**
 * Classifies a kafkajs error at this one chokepoint by walking its cause chain
 * (kafkajs wraps the real error in KafkaJSNumberOfRetriesExceeded and friends).
 */
export function classifyKafkaError(error: unknown): PublishErrorKind {
  const chain: unknown[] = [];
  for (
    let e: unknown = error;
    e && chain.length < 10;
    e = (e as { cause?: unknown; originalError?: unknown }).cause ?? (e as { originalError?: unknown }).originalError
  ) {
    chain.push(e);
    for (const inner of (e as { errors?: unknown[] }).errors ?? []) chain.push(inner);
  }
  if (chain.some((e) => e instanceof BrokerUnreachableError)) return 'unavailable';
  const types = chain.map((e) => (e as { type?: string }).type).filter(Boolean) as string[];
  if (types.some((t) => PERMANENT.has(t))) return 'permanent';
  if (types.some((t) => UNAVAILABLE_TYPES.has(t))) return 'unavailable';
  if (chain.some((e) => UNAVAILABLE_NAMES.has((e as { name?: string }).name ?? ''))) return 'unavailable';
  const messages = chain.map((e) => (e as { message?: unknown }).message).filter((m) => typeof m === 'string');
  if (messages.some((m) => UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(m)))) return 'unavailable';
  return 'retriable';
}

const TRACE_NAMES = new Set<string | symbol>(Object.values(TRACE_HEADER));

/**
 * A record's headers as kafkajs gets them. A message's `traceparent`/`tracestate` are
 * its creation context, written at enqueue, and travel unchanged: a client
 * instrumentation (`@opentelemetry/instrumentation-kafkajs` injects its own send
 * span's context into every record it sends) would otherwise replace them, and
 * consumers would hang under the relay's send instead of the producer's `create`
 * span. Its writes to them are ignored (a strict-mode assignment that a Proxy accepts
 * without storing: a frozen object would make the instrumentation throw and the send
 * fail); other headers it adds go to a copy, never to the claimed row. A message
 * without trace headers is passed as it is (no allocation), and may be traced by it.
 */
function keepCreationContext(headers: Record<string, string>): Record<string, string> {
  if (headers[TRACE_HEADER.traceparent] === undefined) return headers;
  return new Proxy(
    { ...headers },
    {
      set: (target, name, value) => TRACE_NAMES.has(name) || Reflect.set(target, name, value),
      defineProperty: (target, name, descriptor) =>
        TRACE_NAMES.has(name) || Reflect.defineProperty(target, name, descriptor),
    },
  );
}

/** How long a topic's partition count is trusted before it is read again (kafkajs' metadata age is 5 min). */
const PARTITIONS_MAX_AGE_MS = 60_000;

/** Topics' partition counts, read with an admin client when missing or older than a minute. */
function partitionCounts(kafka: Kafka) {
  const known = new Map<string, { count: number; at: number }>();
  return {
    async of(topics: string[]): Promise<Map<string, number>> {
      const now = Date.now();
      const stale = topics.filter((t) => (known.get(t)?.at ?? Number.NEGATIVE_INFINITY) < now - PARTITIONS_MAX_AGE_MS);
      if (stale.length > 0) {
        const listed = new Set(
          await withKafkaAdmin(kafka, 'the relay', 10_000, async (admin) => {
            const names = new Set(await admin.listTopics());
            const present = stale.filter((t) => names.has(t));
            if (present.length === 0) return [];
            const metadata = await admin.fetchTopicMetadata({ topics: present });
            for (const t of metadata.topics) known.set(t.name, { count: t.partitions.length, at: now });
            return present;
          }),
        );
        // Not there yet: kafkajs' own metadata request creates it where the broker allows.
        for (const t of stale) if (!listed.has(t)) known.delete(t);
      }
      return new Map(topics.flatMap((t) => (known.has(t) ? [[t, known.get(t)!.count] as const] : [])));
    },
  };
}

/**
 * How long a broker may wait for the in-sync replicas' acks before answering
 * REQUEST_TIMED_OUT (kafkajs' default is 30 s). With the controller quorum gone the
 * leader cannot shrink its ISR and waits the whole time: at 30 s, 4 tries kept an
 * outage from the relay for two minutes; healthy replicas ack in milliseconds.
 */
const ACK_TIMEOUT_MS = 10_000;

const choosePartition = Partitioners.DefaultPartitioner();
const PARTITION_METADATA: Array<Array<{ partitionId: number; leader: number }>> = [];

/** The partition kafkajs' default partitioner (the Java client's murmur2) gives `key` among `count`. */
function partitionOf(topic: string, key: string, count: number): number {
  PARTITION_METADATA[count] ??= Array.from({ length: count }, (_, partitionId) => ({ partitionId, leader: 0 }));
  return choosePartition({
    topic,
    partitionMetadata: PARTITION_METADATA[count] as never,
    message: { key, value: null },
  });
}

/**
 * The default publisher: a kafkajs producer (not idempotent: see
 * `KafkaPublisherOptions.producer`). Record key = message key,
 * value = the JSON payload text, headers = the message headers.
 *
 * Each partition's records go in a `sendBatch` call of their own (the partition
 * chosen here as kafkajs' default partitioner would, the Java client's murmur2 of the
 * key), so kafkajs' retries are safe: kafkajs 2.2.4 remembers which brokers answered a
 * multi-broker send, and when a partition's leader died and its leadership moved to a
 * broker that had already answered, the retry skipped that broker and the partition's
 * records were never sent, yet the send resolved (producer/sendMessages.js,
 * `responsePerBroker`; a message marked published that no reader found, in
 * test/kafka-cluster.test.ts). With one partition per call there is one broker per
 * call, and the retry goes to whichever leads it now.
 *
 * After any failure that is not the message's fault the producer is replaced on the
 * next publish, so nothing a broker restart left behind in it is reused.
 */
export function createKafkaPublisher(options: KafkaPublisherOptions): Publisher {
  let producer: Producer | undefined;
  let connecting: Promise<Producer> | undefined;

  const partitions = partitionCounts(options.kafka);

  const connected = () => {
    connecting ??= (async () => {
      const p = options.kafka.producer({
        // kafkajs 2's default, the Java client's murmur2 (a key lands on the partition
        // a Java producer would pick), said out loud: kafkajs warns at every start otherwise.
        createPartitioner: Partitioners.DefaultPartitioner,
        retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 2_000 },
        ...options.producer,
        idempotent: false,
        maxInFlightRequests: 1,
      });
      await p.connect();
      producer = p;
      return p;
    })().catch((error) => {
      connecting = undefined;
      throw error;
    });
    return connecting;
  };

  /**
   * Drops `failed` (all of it when closing). Only the producer that failed: with
   * several publishes in flight (relay lanes), a second failure of the same producer
   * must not disconnect the replacement another publish already made.
   */
  const reset = async (failed?: Producer) => {
    const old = producer;
    if (failed && old !== failed) return;
    producer = undefined;
    connecting = undefined;
    await old?.disconnect().catch(() => {});
  };

  return {
    async publish(records) {
      if (records.length === 0) return;
      let p: Producer | undefined;
      try {
        const counts = await partitions.of([...new Set(records.map((r) => r.topic))]);
        const byPartition = new Map<string, TopicMessages>();
        for (const r of records) {
          const count = counts.get(r.topic);
          // A topic the cluster does not list yet goes as one call, placed by kafkajs.
          const partition = count === undefined ? undefined : partitionOf(r.topic, r.key, count);
          const at = `${r.topic}\u0000${partition ?? '*'}`;
          const entry = byPartition.get(at) ?? { topic: r.topic, messages: [] };
          byPartition.set(at, entry);
          entry.messages.push({ key: r.key, value: r.value, partition, headers: keepCreationContext(r.headers) });
        }
        p = await connected();
        const producer = p;
        const sent = await Promise.allSettled(
          [...byPartition.values()].map((entry) =>
            producer.sendBatch({ topicMessages: [entry], acks: -1, timeout: ACK_TIMEOUT_MS }),
          ),
        );
        const failed = sent.find((outcome) => outcome.status === 'rejected');
        if (failed) throw failed.reason;
      } catch (error) {
        const kind = classifyKafkaError(error);
        // A failed connect already cleared itself; a failed send replaces its producer.
        if (kind !== 'permanent' && p) await reset(p);
        const message = error instanceof Error ? error.message : String(error);
        throw new PublishError(
          kind,
          `publishing ${records.length} record(s) to Kafka failed (${kind}): ${message}`,
          error,
        );
      }
    },
    async close() {
      await reset();
    },
    async verify(timeoutMs) {
      // The same client settings as the producer (brokers, ssl, sasl), on an admin of its own.
      await withKafkaAdmin(options.kafka, 'the relay', timeoutMs, (admin) => admin.describeCluster());
    },
  };
}
