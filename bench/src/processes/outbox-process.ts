/**
 * A child process of the benchmark runner, in one of five modes:
 * - `relay`: one outbox relay on a seeded table (the process whose RSS is measured);
 * - `sendbatch`: the baseline, plain kafkajs `sendBatch` of the same rows from memory;
 * - `consumer`: an idempotent consumer (inbox + a handler writing one row) on a topic;
 * - `kafka-count`: its baseline, a plain kafkajs consumer that only counts records;
 * - `idle`: imports what the others import and does nothing (the RSS baseline).
 * All modes share this file, so they load exactly the same modules.
 */
import { randomUUID } from 'node:crypto';
import { type ConsumerOptions, createConsumer, createKafkaSubscriber } from '@eventual/consumer';
import { createKafkaPublisher, createOutbox, createRelay, type Relay } from '@eventual/outbox';
import { Kafka, logLevel, type Message, type Producer } from 'kafkajs';
import knexFactory, { type Knex } from 'knex';
import 'pg';
import { ACKS_ALL, BASELINE_PRODUCER, PRODUCER_RETRY } from '../kafka-settings.js';
import { Recorder } from './diagnostics.js';
import { type ChildMessage, epochNow, type ParentMessage } from './protocol.js';

type Init = Extract<ParentMessage, { type: 'init' }>;

const send = (message: ChildMessage) => process.send?.(message);
const fail = (error: unknown) => {
  send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  setTimeout(() => process.exit(1), 100);
};

let onStart: () => Promise<void> = async () => {};
let onStop: () => Promise<void> = async () => {};

const recorder = new Recorder();

process.on('message', (message: ParentMessage) => {
  if (message.type === 'report') {
    send({ type: 'report', diagnostics: recorder.snapshot() });
    return;
  }
  if (message.type === 'start') recorder.start();
  const step = message.type === 'init' ? init(message) : message.type === 'start' ? onStart() : onStop();
  step.catch(fail);
});
// The runner going away (crash, Ctrl-C) must not leave relays running.
process.on('disconnect', () => process.exit(0));

/** Confirms the stop, then leaves: closing the IPC channel ends the process (see above). */
function stopped(): void {
  send({ type: 'stopped' });
  setTimeout(() => process.disconnect(), 10);
}

async function init(message: Init): Promise<void> {
  if (message.mode === 'idle') {
    onStop = async () => {
      stopped();
    };
    send({ type: 'ready', pid: process.pid });
    return;
  }
  const kafka = recorder.watchKafka(
    new Kafka({ clientId: `bench-${message.mode}`, brokers: message.brokers, logLevel: logLevel.NOTHING }),
  );
  if (message.mode === 'kafka-count') return initKafkaCount(message, kafka);
  const poolMax = message.mode === 'consumer' ? message.poolMax : 4;
  const knex = knexFactory({ client: 'pg', connection: message.databaseUrl, pool: { min: 0, max: poolMax } });
  recorder.watchKnex(knex);
  if (message.mode === 'relay') await initRelay(message, knex, kafka);
  else if (message.mode === 'consumer') await initConsumer(message, knex, kafka);
  else await initSendBatch(message, knex, kafka);
}

async function initRelay(message: Extract<Init, { mode: 'relay' }>, knex: Knex, kafka: Kafka): Promise<void> {
  const outbox = createOutbox({ knex, schema: message.schema });
  const publisher = createKafkaPublisher({ kafka, producer: { retry: { ...PRODUCER_RETRY } } });
  await publisher.publish([warmupRecord(message.warmupTopic)]);
  let published = 0;
  let relay: Relay | undefined;
  onStart = async () => {
    const at = epochNow();
    relay = createRelay(outbox, { publisher, ...message.relay });
    relay.on('relay:published', ({ messages, durationMs }) => {
      published += messages.length;
      recorder.batches += 1;
      recorder.published += messages.length;
      recorder.publishAndMarkMs += durationMs;
      if (message.reportProgress) send({ type: 'progress', count: published, at: epochNow() });
    });
    relay.on('relay:leases', ({ owned }) => send({ type: 'leases', owned: owned.length, at: epochNow() }));
    relay.on('relay:failed', ({ error, kind, messageIds }) =>
      send({ type: 'log', message: `relay:failed ${kind} (${messageIds.length} messages): ${error.message}` }),
    );
    relay.on('relay:error', ({ error }) => send({ type: 'log', message: `relay:error ${error.message}` }));
    await relay.start();
    send({ type: 'started', at, shards: relay.ownedShards() });
  };
  onStop = async () => {
    await relay?.stop();
    await publisher.close();
    await knex.destroy();
    stopped();
  };
  send({ type: 'ready', pid: process.pid });
}

async function initSendBatch(message: Extract<Init, { mode: 'sendbatch' }>, knex: Knex, kafka: Kafka): Promise<void> {
  // The same records the relay would publish: key, payload text, headers, in id order.
  const { rows } = (await knex.raw(
    `select key, payload::text as payload, headers from "${message.sourceSchema}"."outbox" order by id`,
  )) as { rows: Array<{ key: string; payload: string; headers: Record<string, string> }> };
  const batches: Message[][] = [];
  for (let i = 0; i < rows.length; i += message.batchSize) {
    batches.push(
      rows.slice(i, i + message.batchSize).map((r) => ({ key: r.key, value: r.payload, headers: r.headers })),
    );
  }
  await knex.destroy();
  const producer: Producer = kafka.producer(BASELINE_PRODUCER);
  await producer.connect();
  const warm = warmupRecord(message.warmupTopic);
  await producer.send({ topic: warm.topic, messages: [{ key: warm.key, value: warm.value }], acks: ACKS_ALL });
  onStart = async () => {
    const at = epochNow();
    send({ type: 'started', at, shards: [] });
    let count = 0;
    for (const batch of batches) {
      await producer.sendBatch({ topicMessages: [{ topic: message.topic, messages: batch }], acks: ACKS_ALL });
      count += batch.length;
      recorder.batches += 1;
      recorder.published += batch.length;
      send({ type: 'progress', count, at: epochNow() });
    }
    send({ type: 'done', count, at: epochNow() });
  };
  onStop = async () => {
    await producer.disconnect();
    stopped();
  };
  send({ type: 'ready', pid: process.pid, loaded: rows.length });
}

/** The payload the seeded records carry (fixtures.ts `payloadOf`), as far as the handler reads it. */
interface OrderCreated {
  orderId: string;
  customerId: string;
  amountCents: number;
}

async function initConsumer(message: Extract<Init, { mode: 'consumer' }>, knex: Knex, kafka: Kafka): Promise<void> {
  const { schema, expected } = message;
  const { batchSize, partitionsConcurrently } = message.consumer;
  // Built apart from the call: `batchSize` may be newer than the ConsumerOptions this compiles against.
  const options: ConsumerOptions & { batchSize?: number } = {
    outbox: createOutbox({ knex, schema }),
    name: message.groupId,
    topics: [message.topic],
    subscriber: createKafkaSubscriber({
      kafka,
      groupId: message.groupId,
      ...(partitionsConcurrently !== undefined ? { partitionsConcurrently } : {}),
    }),
    // Inbox cleanup is not what is measured; a scheduled run would add stray statements.
    retention: { schedule: false },
    ...(batchSize !== undefined ? { batchSize } : {}),
  };
  const consumer = createConsumer(options);
  consumer.handle<OrderCreated>('OrderCreated', async ({ trx, message: m }) => {
    await trx.withSchema(schema).table('handled').insert({
      message_id: m.id,
      order_id: m.payload.orderId,
      customer_id: m.payload.customerId,
      amount_cents: m.payload.amountCents,
    });
  });
  let settled = 0;
  const settle = () => {
    settled += 1;
    recorder.handled += 1;
    if (settled === expected) send({ type: 'done', count: settled, at: epochNow() });
  };
  // Every outcome counts towards `done`, so a run never hangs; the parent checks the rows.
  consumer.on('consumer:processed', settle);
  consumer.on('consumer:duplicate', settle);
  consumer.on('consumer:deadLettered', (e) => {
    settle();
    send({ type: 'log', message: `dead-lettered ${e.messageId} (${e.reason}): ${e.error}` });
  });
  consumer.on('consumer:error', (e) => send({ type: 'log', message: `consumer:error ${e.error.message}` }));
  consumer.on('consumer:assigned', ({ partitions }) =>
    send({ type: 'assigned', partitions: partitions.length, at: epochNow() }),
  );
  await knex.raw('select 1'); // the first connection is not timed
  onStart = async () => {
    const at = epochNow();
    send({ type: 'started', at, shards: [] });
    await consumer.start();
  };
  onStop = async () => {
    await consumer.stop();
    await knex.destroy();
    stopped();
  };
  send({ type: 'ready', pid: process.pid });
}

/** The consumer baseline: a kafkajs consumer with default settings that counts records in `eachBatch`. */
async function initKafkaCount(message: Extract<Init, { mode: 'kafka-count' }>, kafka: Kafka): Promise<void> {
  const consumer = kafka.consumer({ groupId: message.groupId });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) =>
    send({
      type: 'assigned',
      partitions: Object.values(payload.memberAssignment).reduce((sum, p) => sum + p.length, 0),
      at: epochNow(),
    }),
  );
  let count = 0;
  onStart = async () => {
    const at = epochNow();
    send({ type: 'started', at, shards: [] });
    // Connecting is timed, as the consumer's subscriber connects in start() too.
    await consumer.connect();
    await consumer.subscribe({ topic: message.topic, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const before = count;
        count += batch.messages.length;
        recorder.batches += 1;
        recorder.handled += batch.messages.length;
        if (before < message.expected && count >= message.expected) send({ type: 'done', count, at: epochNow() });
      },
    });
  };
  onStop = async () => {
    await consumer.disconnect();
    stopped();
  };
  send({ type: 'ready', pid: process.pid });
}

function warmupRecord(topic: string) {
  const id = randomUUID();
  return { id, topic, key: 'warmup', value: '{}', headers: { 'message-id': id } };
}
