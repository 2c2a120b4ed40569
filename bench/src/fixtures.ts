import { randomBytes } from 'node:crypto';
import { createOutbox, type JsonValue, type MessageInput } from '@eventual/outbox';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import knexFactory, { type Knex } from 'knex';

/** Shards per outbox table in every benchmark (the outbox default). */
export const SHARDS = 32;
/** Partitions of every benchmark topic, relay and baseline alike. */
export const PARTITIONS = 8;

export function connect(url: string, poolMax = 10): Knex {
  return knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: poolMax } });
}

export function kafkaClient(brokers: string[], clientId = 'bench'): Kafka {
  return new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING });
}

/** A unique lower-case name for schemas and topics of one run. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/**
 * A payload that serialises to exactly `bytes` bytes of JSON (ASCII, so characters =
 * bytes): a plausible order event padded with a filler field.
 */
export function payloadOf(i: number, key: string, bytes: number): Record<string, JsonValue> {
  const body: Record<string, JsonValue> = {
    orderId: `order-${i}`,
    customerId: key,
    amountCents: 1_000 + (i % 9_000),
    currency: 'EUR',
    status: 'CREATED',
    pad: '',
  };
  body.pad = 'x'.repeat(Math.max(0, bytes - JSON.stringify(body).length));
  return body;
}

export function keyOf(i: number, keys: number): string {
  return `customer-${String(i % keys).padStart(4, '0')}`;
}

export function messageOf(i: number, topic: string, keys: number, payloadBytes: number): MessageInput {
  const key = keyOf(i, keys);
  return { topic, key, type: 'OrderCreated', payload: payloadOf(i, key, payloadBytes) };
}

/**
 * Fills a new outbox in `schema` with `count` pending messages through the public
 * `enqueue`, in large transactions of multi-row inserts (seeding is not timed).
 */
export async function seedOutbox(
  knex: Knex,
  schema: string,
  options: { count: number; keys: number; payloadBytes: number; topic: string },
): Promise<void> {
  const outbox = createOutbox({ knex, schema });
  await outbox.migrate({ shards: SHARDS });
  const perStatement = 5_000;
  const perTransaction = 25_000;
  for (let from = 0; from < options.count; from += perTransaction) {
    const to = Math.min(options.count, from + perTransaction);
    await knex.transaction(async (trx) => {
      for (let i = from; i < to; i += perStatement) {
        const inputs = Array.from({ length: Math.min(perStatement, to - i) }, (_, j) =>
          messageOf(i + j, options.topic, options.keys, options.payloadBytes),
        );
        await outbox.enqueue(trx, inputs);
      }
    });
  }
}

/**
 * A fresh outbox in `to` holding the rows of the seeded one in `from`, retargeted to
 * `topic`, vacuumed and analysed: every run starts from the same table in the same
 * shape, without seeding through `enqueue` again.
 */
export async function cloneOutbox(knex: Knex, from: string, to: string, topic: string): Promise<void> {
  await createOutbox({ knex, schema: to }).migrate({ shards: SHARDS });
  await knex.raw(
    `insert into "${to}"."outbox" (id, topic, key, type, payload, headers, shard, state)
     select id, ?, key, type, payload, headers, shard, 'pending' from "${from}"."outbox" order by id`,
    [topic],
  );
  await knex.raw(`vacuum (analyze) "${to}"."outbox"`);
}

export async function dropSchema(knex: Knex, schema: string): Promise<void> {
  await knex.raw(`drop schema if exists "${schema}" cascade`);
}

export async function withAdmin<T>(kafka: Kafka, work: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.disconnect();
  }
}

export async function createTopics(kafka: Kafka, topics: string[], partitions = PARTITIONS): Promise<void> {
  await withAdmin(kafka, (admin) =>
    admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: partitions })), waitForLeaders: true }),
  );
}

export async function deleteTopics(kafka: Kafka, topics: string[]): Promise<void> {
  await withAdmin(kafka, (admin) => admin.deleteTopics({ topics })).catch(() => {});
}

/** Records on a topic (high minus low watermark over its partitions): what a run put there. */
export async function recordCount(kafka: Kafka, topic: string): Promise<number> {
  const offsets = await withAdmin(kafka, (admin) => admin.fetchTopicOffsets(topic));
  return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `promise`, or a rejection naming `what` after `ms`; the timer never outlives the race. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
