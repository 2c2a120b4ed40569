/**
 * A child process of the benchmark runner, in one of three modes:
 * - `relay`: one outbox relay on a seeded table (the process whose RSS is measured);
 * - `sendbatch`: the baseline, plain kafkajs `sendBatch` of the same rows from memory;
 * - `idle`: imports what the others import and does nothing (the RSS baseline).
 * All modes share this file, so they load exactly the same modules.
 */
import { randomUUID } from 'node:crypto';
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
  const knex = knexFactory({ client: 'pg', connection: message.databaseUrl, pool: { min: 0, max: 4 } });
  recorder.watchKnex(knex);
  const kafka = recorder.watchKafka(
    new Kafka({ clientId: `bench-${message.mode}`, brokers: message.brokers, logLevel: logLevel.NOTHING }),
  );
  if (message.mode === 'relay') await initRelay(message, knex, kafka);
  else await initSendBatch(message, knex, kafka);
}

async function initRelay(message: Extract<Init, { mode: 'relay' }>, knex: Knex, kafka: Kafka): Promise<void> {
  const outbox = createOutbox({ knex, schema: message.schema });
  const publisher = createKafkaPublisher({ kafka, producer: { retry: { ...PRODUCER_RETRY } } });
  await publisher.publish([warmupRecord(message.warmupTopic)]);
  let published = 0;
  outbox.on('relay:published', ({ messages, durationMs }) => {
    published += messages.length;
    recorder.batches += 1;
    recorder.published += messages.length;
    recorder.publishAndMarkMs += durationMs;
    if (message.reportProgress) send({ type: 'progress', count: published, at: epochNow() });
  });
  outbox.on('relay:leases', ({ owned }) => send({ type: 'leases', owned: owned.length, at: epochNow() }));
  outbox.on('relay:failed', ({ error, kind, messageIds }) =>
    send({ type: 'log', message: `relay:failed ${kind} (${messageIds.length} messages): ${error.message}` }),
  );
  outbox.on('relay:error', ({ error }) => send({ type: 'log', message: `relay:error ${error.message}` }));
  let relay: Relay | undefined;
  onStart = async () => {
    const at = epochNow();
    relay = createRelay(outbox, { publisher, ...message.relay });
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

function warmupRecord(topic: string) {
  const id = randomUUID();
  return { id, topic, key: 'warmup', value: '{}', headers: { 'message-id': id } };
}
