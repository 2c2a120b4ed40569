import { sleep, TRACE_HEADER } from '@eventual/core';
import kafkajs, { type Kafka, type Producer, type ProducerConfig, type TopicMessages } from 'kafkajs';
import { PublishError, type PublishErrorKind } from './errors.js';
import { withKafkaAdmin } from './kafka-connect.js';
import type { Publisher } from './publisher.js';

// Off the default export: Node's ESM loader does not see all of kafkajs' CommonJS exports.
const { Partitioners } = kafkajs;

/** Pauses before the second and third try of a whole batch (a leader moving, a new topic's metadata). */
const RESEND_DELAYS_MS = [100, 400];

/**
 * kafkajs' `sendBatch` without its own retry, tried again here as a whole: every
 * record is sent again, so none can be skipped (see `KafkaPublisherOptions.producer`).
 * Records a failed try did write reach Kafka twice; consumers drop them by id. Only
 * what may pass in a moment is tried again (a leader moving, a topic's metadata not
 * there yet); a broker that stays away fails the publish within half a second, and the
 * relay's own backoff takes over.
 */
async function sendWhole(producer: Producer, topicMessages: TopicMessages[]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await producer.sendBatch({ topicMessages, acks: -1 });
      return;
    } catch (error) {
      const delay = RESEND_DELAYS_MS[attempt];
      if (delay === undefined || classifyKafkaError(error) === 'permanent') throw error;
      await sleep(delay);
    }
  }
}

/** Options of `createKafkaPublisher`. */
export interface KafkaPublisherOptions {
  /** A kafkajs client; the publisher creates and owns its producer. */
  kafka: Kafka;
  /**
   * Producer settings. eventual always sends with one request in flight per broker
   * (per-partition order), acks from all in-sync replicas, and no retry inside kafkajs
   * (`retry.retries` 0: the publisher sends the whole batch again, up to three tries in
   * half a second, then fails the publish and the relay repeats it). These cannot be
   * overridden. Why no kafkajs retry: kafkajs 2.2.4 remembers
   * which brokers answered a send; when a partition's leader dies and leadership moves
   * to a broker that had already answered for its own partitions, the retry skips that
   * broker and the moved partition's records are never sent, yet the send resolves
   * (producer/sendMessages.js, `responsePerBroker`). Seen in this repository's cluster
   * test: a message marked published that no reader ever found on Kafka. kafkajs'
   * idempotent producer needs its own retries, so it is off: a repeated batch can put a
   * record on Kafka twice, which consumers drop by message id (delivery is at least
   * once anyway).
   */
  producer?: Omit<ProducerConfig, 'idempotent' | 'maxInFlightRequests' | 'retry'>;
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

/**
 * The default publisher: a kafkajs producer, one request in flight per broker, acks
 * from all in-sync replicas, no internal retry (see `KafkaPublisherOptions.producer`
 * for why). Record key = message key, value = the JSON payload text, headers = the
 * message headers.
 *
 * After any failure that is not the message's fault the producer is replaced on the
 * next publish, so a broker restart never leaves a producer with stale state behind.
 */
export function createKafkaPublisher(options: KafkaPublisherOptions): Publisher {
  let producer: Producer | undefined;
  let connecting: Promise<Producer> | undefined;

  const connected = () => {
    connecting ??= (async () => {
      const p = options.kafka.producer({
        // kafkajs 2's default, the Java client's murmur2 (a key lands on the partition
        // a Java producer would pick), said out loud: kafkajs warns at every start otherwise.
        createPartitioner: Partitioners.DefaultPartitioner,
        ...options.producer,
        idempotent: false,
        maxInFlightRequests: 1,
        retry: { retries: 0 },
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
      const byTopic = new Map<string, TopicMessages>();
      for (const r of records) {
        const entry = byTopic.get(r.topic) ?? { topic: r.topic, messages: [] };
        byTopic.set(r.topic, entry);
        entry.messages.push({ key: r.key, value: r.value, headers: keepCreationContext(r.headers) });
      }
      let p: Producer | undefined;
      try {
        p = await connected();
        await sendWhole(p, [...byTopic.values()]);
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
