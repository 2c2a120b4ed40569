import { migrateInbox } from '@eventual/consumer';
import { createKafkaPublisher, createOutbox } from '@eventual/outbox';
import type { Kafka } from 'kafkajs';
import type { Knex } from 'knex';
import { idleRss, OutboxProcess } from '../child.js';
import {
  connect,
  createTopics,
  deleteTopics,
  dropSchema,
  kafkaClient,
  PARTITIONS,
  recordCount,
  seedOutbox,
  uniqueName,
} from '../fixtures.js';
import { type BenchContext, type Benchmark, figure, type Sample } from '../harness.js';
import type { Diagnostics } from '../processes/diagnostics.js';
import type { ConsumerSettings } from '../processes/protocol.js';
import { consumerProfile } from '../profile.js';
import { round } from '../stats.js';

const KEYS = 1_000;
const PAYLOAD_BYTES = 300;
/** Records of one partition per transaction in the batch figure (the consumer's `batchSize`). */
const BATCH_SIZE = 100;
/** The consumer child's knex pool: the subscriber's 4 partitions in flight, plus room to spare. */
const POOL_MAX = 10;
/** Rows read from the seeded outbox per query, and records per publish, when filling the topic. */
const FILL_PAGE = 5_000;
const FILL_BATCH = 500; // the relay's default batch size
const RUN_TIMEOUT_MS = 15 * 60_000;

interface RunResult {
  durationMs: number;
  throughput: number;
  /** From start until the group join assigned the partitions. */
  assignedAfterMs: number;
  recordsTimed: number;
  peakRssMiB: number;
  diagnostics: Diagnostics;
  /** Rows the handler wrote and inbox rows, checked equal to the record count (consumer runs). */
  handledRows?: number;
  inboxRows?: number;
}

/**
 * Issue 7, measurements 3 and 5 (consumer part). A topic of N records in eventual's
 * wire format, as the relay publishes them, read by an idempotent consumer
 * (createConsumer + createKafkaSubscriber, fresh group) whose handler inserts one row
 * in the record's transaction, in per-record mode (one transaction per record, the
 * default) and in batch mode (`batchSize` records of one partition per transaction);
 * against a plain kafkajs consumer with default settings that only counts the records
 * in `eachBatch`, in the same kind of child process on the same topic. Memory: the
 * per-record consumer process's peak RSS against an idle process that loads the same
 * modules. Each run is timed from start (connect and group join included) until the
 * N-th record is settled, and fails unless the handler's table and the inbox hold
 * exactly N rows.
 */
const consumerThroughput: Benchmark = {
  name: 'consumer-throughput',
  order: 3,
  title: 'Consumer throughput and consumer memory',
  description:
    'A topic pre-filled with records as the relay publishes them (300-byte JSON payloads, 1,000 keys, 8 ' +
    'partitions), consumed by createConsumer + createKafkaSubscriber (fresh group, default ' +
    'partitionsConcurrently 4) with a handler that inserts one row in the inbox transaction, timed from start ' +
    'until every record is processed: one transaction per record (default) and batchSize 100. Baseline: a ' +
    'kafkajs consumer with default settings that only counts the records (eachBatch), fresh group, same topic. ' +
    'Memory: peak RSS (VmHWM) of the per-record consumer process vs an idle process importing the same modules.',
  async run(ctx) {
    const count = ctx.size(30_000, 2_000);
    const dbUrl = await ctx.services.createDatabase('bench_consumer');
    const knex = connect(dbUrl);
    const kafka = kafkaClient(ctx.services.kafkaBrokers);
    const topic = uniqueName('consumer');
    try {
      await createTopics(kafka, [topic]);
      const filled = Date.now();
      await fillTopic(knex, kafka, topic, count);
      ctx.log(`filled ${topic} with ${count} records in ${((Date.now() - filled) / 1000).toFixed(1)} s`);

      const perRecord: Sample[] = [];
      const batch: Sample[] = [];
      const memory: Sample[] = [];
      const details: unknown[] = [];
      for (let rep = 1; rep <= ctx.reps; rep++) {
        const { result, load } = await ctx.repetition(rep, async () => {
          const input = { dbUrl, knex, topic, count };
          const baseline = await runKafkaCount(ctx, input);
          ctx.log(`rep ${rep}: kafkajs counting consumer ${baseline.throughput.toFixed(0)} msg/s`);
          const one = await runConsumer(ctx, input, {});
          ctx.log(
            `rep ${rep}: consumer, per record ${one.throughput.toFixed(0)} msg/s, peak RSS ${one.peakRssMiB.toFixed(0)} MiB`,
          );
          const batched = await runConsumer(ctx, input, { batchSize: BATCH_SIZE });
          ctx.log(`rep ${rep}: consumer, batchSize ${BATCH_SIZE} ${batched.throughput.toFixed(0)} msg/s`);
          const idleRssMiB = await idleRss(ctx.log);
          ctx.log(`rep ${rep}: idle process peak RSS ${idleRssMiB.toFixed(0)} MiB`);
          return { baseline, one, batched, idleRssMiB };
        });
        const { baseline, one, batched, idleRssMiB } = result;
        perRecord.push({ value: one.throughput, baseline: baseline.throughput });
        batch.push({ value: batched.throughput, baseline: baseline.throughput });
        memory.push({ value: one.peakRssMiB, baseline: idleRssMiB });
        details.push({
          rep,
          load,
          baseline: summary(baseline),
          perRecord: summary(one),
          batch: summary(batched),
          idleRssMiB: round(idleRssMiB, 1),
        });
      }
      const baselineLabel = 'kafkajs consumer that only counts (eachBatch)';
      return {
        figures: [
          figure(
            {
              id: 'consumer-per-record.throughput',
              label: 'Consumer throughput, one transaction per record, from start()',
              unit: 'msg/s',
              baselineLabel,
              better: 'higher',
            },
            perRecord,
          ),
          figure(
            {
              id: 'consumer-batch.throughput',
              label: `Consumer throughput, batchSize ${BATCH_SIZE}, from start()`,
              unit: 'msg/s',
              baselineLabel,
              better: 'higher',
            },
            batch,
          ),
          figure(
            {
              id: 'consumer-per-record.peak-rss',
              label: 'Peak RSS of the consumer process during the per-record run',
              unit: 'MiB',
              baselineLabel: 'idle process, same imports',
              better: 'lower',
            },
            memory,
          ),
        ],
        parameters: {
          messages: count,
          keys: KEYS,
          payloadBytes: PAYLOAD_BYTES,
          partitions: PARTITIONS,
          partitionsConcurrently: 'default (4)',
          batchSize: { perRecord: 'default (1)', batch: BATCH_SIZE },
          handler: 'inserts one row (message id, order id, customer id, amount) with the record transaction',
          knexPoolMax: POOL_MAX,
          retentionSchedule: false,
          baselineConsumer: 'kafkajs defaults, eachBatch, fromBeginning',
          topicFilledBy: 'createKafkaPublisher (the relay publisher) from rows enqueued into an outbox',
          reps: ctx.reps,
        },
        details,
      };
    } finally {
      await deleteTopics(kafka, [topic]);
      await knex.destroy();
    }
  },
};
export default consumerThroughput;

function summary(run: RunResult) {
  return {
    durationMs: round(run.durationMs, 1),
    throughput: round(run.throughput, 1),
    assignedAfterMs: round(run.assignedAfterMs, 1),
    // Without connecting and joining the group: what the fixed start-up cost hides in short runs.
    throughputAfterAssigned: round((run.recordsTimed * 1000) / (run.durationMs - run.assignedAfterMs), 1),
    peakRssMiB: round(run.peakRssMiB, 1),
    ...(run.handledRows !== undefined ? { handledRows: run.handledRows, inboxRows: run.inboxRows } : {}),
    profile: consumerProfile(run.diagnostics),
  };
}

/**
 * Puts `count` records on `topic` exactly as a relay would: messages enqueued into an
 * outbox (ids, standard headers, payload text), then published with the relay's own
 * publisher, in id order and relay-sized batches. Not timed.
 */
async function fillTopic(knex: Knex, kafka: Kafka, topic: string, count: number): Promise<void> {
  const schema = uniqueName('fill');
  const publisher = createKafkaPublisher({ kafka });
  try {
    await seedOutbox(knex, schema, { count, keys: KEYS, payloadBytes: PAYLOAD_BYTES, topic });
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const { rows } = (await knex.raw(
        `select id, topic, key, payload::text as payload, headers from "${schema}"."outbox"
          where id > ? order by id limit ?`,
        [after, FILL_PAGE],
      )) as {
        rows: Array<{ id: string; topic: string; key: string; payload: string; headers: Record<string, string> }>;
      };
      if (rows.length === 0) break;
      for (let i = 0; i < rows.length; i += FILL_BATCH) {
        const batch = rows.slice(i, i + FILL_BATCH);
        await publisher.publish(
          batch.map((r) => ({ id: r.id, topic: r.topic, key: r.key, value: r.payload, headers: r.headers })),
        );
      }
      after = rows[rows.length - 1]!.id;
    }
  } finally {
    await publisher.close();
    await dropSchema(knex, schema).catch(() => {});
  }
  const onTopic = await recordCount(kafka, topic);
  if (onTopic !== count) throw new Error(`filling ${topic} put ${onTopic} records on it, expected ${count}`);
}

interface RunInput {
  dbUrl: string;
  knex: Knex;
  topic: string;
  count: number;
}

/** Starts a prepared child, waits for its `done`, and collects its timing, profile and peak RSS. */
async function timeChild(child: OutboxProcess, count: number) {
  let assignedAt: number | undefined;
  child.on((m) => {
    if (m.type === 'assigned') assignedAt ??= m.at;
  });
  const started = child.next('started', 30_000);
  const done = child.next('done', RUN_TIMEOUT_MS);
  done.catch(() => {}); // awaited below, after `started`
  child.send({ type: 'start' });
  const startedAt = (await started).at;
  const doneAt = (await done).at; // rejects at once if the child fails
  const durationMs = doneAt - startedAt;
  const diagnostics = await child.report();
  const { peakRssMiB } = await child.memory();
  await child.stop();
  return {
    durationMs,
    throughput: (count * 1000) / durationMs,
    assignedAfterMs: assignedAt === undefined ? Number.NaN : assignedAt - startedAt,
    recordsTimed: count,
    peakRssMiB,
    diagnostics,
  };
}

async function runKafkaCount(ctx: BenchContext, input: RunInput): Promise<RunResult> {
  const child = new OutboxProcess('kafka-count', ctx.log);
  try {
    child.send({
      type: 'init',
      mode: 'kafka-count',
      brokers: ctx.services.kafkaBrokers,
      topic: input.topic,
      groupId: uniqueName('count'),
      expected: input.count,
    });
    await child.next('ready', 60_000);
    const run = await timeChild(child, input.count);
    if (run.diagnostics.handled !== input.count)
      throw new Error(`the counting consumer saw ${run.diagnostics.handled} records, expected ${input.count}`);
    return run;
  } finally {
    child.kill();
  }
}

/**
 * One consumer child on a fresh schema (its outbox, inbox and the handler's table) and
 * a fresh group; fails unless the handler wrote exactly one row per record and the
 * inbox holds exactly one processed row per record.
 */
async function runConsumer(ctx: BenchContext, input: RunInput, settings: ConsumerSettings): Promise<RunResult> {
  const schema = uniqueName('consumer');
  const groupId = schema;
  await createOutbox({ knex: input.knex, schema }).migrate();
  await migrateInbox(input.knex, { schema });
  await input.knex.raw(
    `create table "${schema}"."handled" (
       message_id text primary key,
       order_id text not null,
       customer_id text not null,
       amount_cents integer not null,
       created_at timestamptz not null default now()
     )`,
  );
  const label = settings.batchSize === undefined ? 'consumer' : `consumer-batch-${settings.batchSize}`;
  const child = new OutboxProcess(label, ctx.log);
  try {
    child.send({
      type: 'init',
      mode: 'consumer',
      databaseUrl: input.dbUrl,
      brokers: ctx.services.kafkaBrokers,
      schema,
      topic: input.topic,
      groupId,
      expected: input.count,
      poolMax: POOL_MAX,
      consumer: settings,
    });
    await child.next('ready', 60_000);
    const run = await timeChild(child, input.count);
    const rows = async (sql: string, bindings: string[] = []) =>
      Number(((await input.knex.raw(sql, bindings)) as { rows: Array<{ n: string }> }).rows[0]?.n);
    const handledRows = await rows(`select count(*) as n from "${schema}"."handled"`);
    const inboxRows = await rows(`select count(*) as n from "${schema}"."inbox" where consumer = ?`, [groupId]);
    const processedRows = await rows(
      `select count(*) as n from "${schema}"."inbox" where consumer = ? and state = 'processed'`,
      [groupId],
    );
    if (handledRows !== input.count || inboxRows !== input.count || processedRows !== input.count)
      throw new Error(
        `${label}: expected ${input.count} rows each, got ${handledRows} handled, ${inboxRows} in the inbox ` +
          `(${processedRows} processed)`,
      );
    return { ...run, handledRows, inboxRows };
  } finally {
    child.kill();
    await dropSchema(input.knex, schema).catch(() => {});
  }
}
