import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Kafka, type KafkaMessage, logLevel } from 'kafkajs';
import { inject } from 'vitest';
import { createDatabase } from './database.js';
import { waitUntil } from './wait.js';
import './provided-context.js';

/** The services the vitest globalSetup started, as seen from a test file. */
export function testServices() {
  const devstack = inject('devstack');
  return {
    ...devstack,
    /** A fresh database for this test file; its name starts with `prefix`. */
    createDatabase: (prefix = 'test') => createDatabase(devstack.adminDatabaseUrl, prefix),
    kafka: (clientId = 'test') => new Kafka({ clientId, brokers: devstack.kafkaBrokers, logLevel: logLevel.NOTHING }),
  };
}

/** A random topic name, so test files never see each other's records. */
export function randomTopic(prefix = 'test'): string {
  return `${prefix}-${randomUUID()}`;
}

/** A record as `readTopics` saw it on Kafka, decoded as UTF-8 text. */
export interface ReadRecord {
  /** The topic it was read from. */
  topic: string;
  /** Its partition. */
  partition: number;
  /** Its offset, as a decimal string. */
  offset: string;
  /** The record key, or null when it has none. */
  key: string | null;
  /** The record value (an eventual message's JSON payload text), or null for a tombstone. */
  value: string | null;
  /** Header values; a header sent more than once keeps its first value. */
  headers: Record<string, string>;
}

/** What `readTopics` returns: the records read so far, and ways to wait for more. */
export interface TopicReader {
  /** Every record read so far, in arrival order (per partition, offset order); it grows as records arrive. */
  readonly records: ReadRecord[];
  /** Waits until `predicate(records)` holds, failing after `timeoutMs` with the count seen. */
  waitFor(what: string, predicate: (records: ReadRecord[]) => boolean, timeoutMs?: number): Promise<ReadRecord[]>;
  /** Waits until at least `count` records were read (default `timeoutMs` 30,000). */
  waitForCount(count: number, timeoutMs?: number): Promise<ReadRecord[]>;
  /** Disconnects the reader's consumer; `records` keeps what it read. */
  stop(): Promise<void>;
}

/**
 * Reads topics from the beginning with a plain kafkajs consumer (its own group,
 * read_committed), collecting every record: the independent witness of what the
 * library put on Kafka.
 */
export async function readTopics(brokers: string[], topics: string[]): Promise<TopicReader> {
  const kafka = new Kafka({ clientId: 'reader', brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `reader-${randomUUID()}`, maxWaitTimeInMs: 100 });
  const records: ReadRecord[] = [];
  await consumer.connect();
  for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      records.push(toRecord(topic, partition, message));
    },
  });
  const waitFor = (what: string, predicate: (r: ReadRecord[]) => boolean, timeoutMs = 30_000) =>
    waitUntil(`${what} (have ${records.length} records)`, async () => (predicate(records) ? records : undefined), {
      timeoutMs,
      intervalMs: 50,
    });
  return {
    records,
    waitFor,
    waitForCount: (count, timeoutMs) =>
      waitFor(`${count} records on ${topics.join(',')}`, (r) => r.length >= count, timeoutMs),
    stop: () => consumer.disconnect(),
  };
}

function toRecord(topic: string, partition: number, message: KafkaMessage): ReadRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? String(value[0]) : String(value);
  }
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key?.toString() ?? null,
    value: message.value?.toString() ?? null,
    headers,
  };
}

/** Creates topics and waits for their leaders, so the first produce does not race creation. */
export async function createTopics(
  brokers: string[],
  topics: string[],
  partitions = 3,
  configEntries: Array<{ name: string; value: string }> = [],
): Promise<void> {
  const admin = new Kafka({ clientId: 'topics', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: topics.map((topic) => ({ topic, numPartitions: partitions, configEntries })),
      waitForLeaders: false,
    });
    // kafkajs' own waitForLeaders gives up when the broker it asks has not heard of the
    // topic yet (UNKNOWN_TOPIC_OR_PARTITION), which happens in a cluster: ask until
    // every partition has a leader.
    await waitUntil(
      `leaders for ${topics.join(', ')}`,
      async () => {
        const metadata = await admin.fetchTopicMetadata({ topics });
        const led = metadata.topics.every(
          (t) => t.partitions.length === partitions && t.partitions.every((x) => x.leader >= 0),
        );
        return led ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  } finally {
    await admin.disconnect();
  }
}

/** A message a fixture script sent to its parent with `process.send()`. */
export interface ChildMessage {
  /** What happened in the child, e.g. `started`: what `waitFor(event)` matches. */
  event: string;
  [key: string]: unknown;
}

/**
 * Runs a TypeScript fixture script (with tsx) as a child process with IPC, collecting
 * the messages it sends, so tests can SIGKILL a relay or a consumer like a real crash.
 */
export function startChild(scriptPath: string, args: string[] = [], env: Record<string, string> = {}) {
  const child: ChildProcess = fork(scriptPath, args, {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
  });
  const messages: ChildMessage[] = [];
  child.on('message', (m) => messages.push(m as ChildMessage));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    messages,
    exited,
    waitFor: (event: string, timeoutMs = 30_000) =>
      waitUntil(`child ${scriptPath} to report '${event}'`, async () => messages.find((m) => m.event === event), {
        timeoutMs,
        intervalMs: 20,
      }),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
