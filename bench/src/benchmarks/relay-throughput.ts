import { createOutbox } from '@eventual/outbox';
import { idleRss, OutboxProcess } from '../child.js';
import {
  cloneOutbox,
  connect,
  createTopics,
  deleteTopics,
  dropSchema,
  kafkaClient,
  PARTITIONS,
  recordCount,
  SHARDS,
  seedOutbox,
  uniqueName,
  withTimeout,
} from '../fixtures.js';
import { type BenchContext, type Benchmark, figure, type Sample } from '../harness.js';
import type { Diagnostics } from '../processes/diagnostics.js';
import type { RelaySettings } from '../processes/protocol.js';
import { profile } from '../profile.js';
import { round } from '../stats.js';

const BATCH_SIZE = 500; // the relay default, and the baseline's sendBatch size
const POLL_INTERVAL_MS = 1_000; // the relay default
const RUN_TIMEOUT_MS = 15 * 60_000;

interface RunResult {
  durationMs: number;
  throughput: number;
  recordsOnTopic: number;
  peakRssMiB: number[];
  shards: number[][];
  diagnostics: Diagnostics[];
  /** Time from start until every relay held its fair share of shards (null: never during the run). */
  balancedAfterMs?: number | null;
  /** msg/s from the moment the split settled to the end (null: settled too late to time it). */
  settledThroughput?: number | null;
}

/**
 * Issue 7, measurements 1 and 5 (relay part). A backlog of pending messages moved to
 * Kafka by one relay process and by two relay processes sharing the table, against
 * plain kafkajs `sendBatch` of the same records from memory with the same producer
 * settings and batch size; and the relay process's peak RSS against an idle process
 * that loads the same modules. Every process is a fresh child (node + tsx loader) that
 * connects and sends one warm-up record before the clock starts.
 */
const relayThroughput: Benchmark = {
  name: 'relay-throughput',
  order: 1,
  title: 'Relay throughput and relay memory',
  description:
    'Pending outbox rows (300-byte JSON payloads, 1,000 keys) moved to Kafka by one relay and by two relays on ' +
    'the same table, timed from relay.start() until the last row is marked published (for two relays also the ' +
    'rate from the moment both held their share of the shards to the end). Baseline: plain kafkajs sendBatch of ' +
    'the same records from memory ' +
    '(idempotent, maxInFlightRequests 1, acks -1, same batch size). ' +
    'Memory: peak RSS (VmHWM) of the one-relay process vs an idle process importing the same modules.',
  async run(ctx) {
    const count = ctx.size(200_000, 2_000);
    const keys = 1_000;
    const payloadBytes = 300;
    const dbUrl = await ctx.services.createDatabase('bench_relay');
    const knex = connect(dbUrl);
    const kafka = kafkaClient(ctx.services.kafkaBrokers);
    const template = uniqueName('seed');
    const warmupTopic = uniqueName('warmup');
    try {
      await createTopics(kafka, [warmupTopic], 1);
      const seeded = Date.now();
      await seedOutbox(knex, template, { count, keys, payloadBytes, topic: 'unused' });
      await knex.raw(`vacuum (analyze) "${template}"."outbox"`);
      ctx.log(`seeded ${count} messages in ${((Date.now() - seeded) / 1000).toFixed(1)} s`);

      const throughput1: Sample[] = [];
      const throughput2: Sample[] = [];
      const throughput2Settled: Sample[] = [];
      const memory: Sample[] = [];
      const details: unknown[] = [];
      for (let rep = 1; rep <= ctx.reps; rep++) {
        const { result, load } = await ctx.repetition(rep, async () => {
          const baseline = await runBaseline(ctx, { dbUrl, kafka, template, warmupTopic, count });
          ctx.log(`rep ${rep}: kafkajs sendBatch ${baseline.throughput.toFixed(0)} msg/s`);
          const common = { dbUrl, knex, kafka, template, warmupTopic, count };
          const one = await runRelays(ctx, { ...common, relays: 1 });
          ctx.log(
            `rep ${rep}: 1 relay ${one.throughput.toFixed(0)} msg/s, peak RSS ${one.peakRssMiB[0]!.toFixed(0)} MiB`,
          );
          const two = await runRelays(ctx, { ...common, relays: 2 });
          const split = two.shards.map((s) => s.length).join('/');
          const balanced = two.balancedAfterMs == null ? 'never' : `after ${(two.balancedAfterMs / 1000).toFixed(1)} s`;
          ctx.log(
            `rep ${rep}: 2 relays ${two.throughput.toFixed(0)} msg/s (shards at start ${split}, balanced ${balanced})`,
          );
          const idleRssMiB = await idleRss(ctx.log);
          ctx.log(`rep ${rep}: idle process peak RSS ${idleRssMiB.toFixed(0)} MiB`);
          return { baseline, one, two, idleRssMiB };
        });
        const { baseline, one, two, idleRssMiB } = result;
        throughput1.push({ value: one.throughput, baseline: baseline.throughput });
        throughput2.push({ value: two.throughput, baseline: baseline.throughput });
        if (two.settledThroughput)
          throughput2Settled.push({ value: two.settledThroughput, baseline: baseline.throughput });
        memory.push({ value: one.peakRssMiB[0]!, baseline: idleRssMiB });
        details.push({
          rep,
          load,
          baseline: summary(baseline),
          oneRelay: summary(one),
          twoRelays: summary(two),
          idleRssMiB: round(idleRssMiB, 1),
        });
      }
      return {
        figures: [
          figure(
            {
              id: 'relay-1.throughput',
              label: 'Relay throughput, 1 relay, from start()',
              unit: 'msg/s',
              baselineLabel: 'kafkajs sendBatch from memory',
              better: 'higher',
              target: { on: 'ratio', op: '>=', threshold: 0.7 },
            },
            throughput1,
          ),
          figure(
            {
              id: 'relay-2.throughput',
              label: 'Relay throughput, 2 relays on one table, from start()',
              unit: 'msg/s',
              baselineLabel: 'kafkajs sendBatch from memory',
              better: 'higher',
              target: { on: 'ratio', op: '>=', threshold: 0.7 },
            },
            throughput2,
          ),
          ...(throughput2Settled.length > 0
            ? [
                figure(
                  {
                    id: 'relay-2-settled.throughput',
                    label: `Relay throughput, 2 relays, once their shard split settled (${throughput2Settled.length} of ${ctx.reps} reps)`,
                    unit: 'msg/s',
                    baselineLabel: 'kafkajs sendBatch from memory',
                    better: 'higher',
                    target: { on: 'ratio', op: '>=', threshold: 0.7 },
                  },
                  throughput2Settled,
                ),
              ]
            : []),
          figure(
            {
              id: 'relay-1.peak-rss',
              label: 'Peak RSS of the relay process during the 1-relay run',
              unit: 'MiB',
              baselineLabel: 'idle process, same imports',
              better: 'lower',
            },
            memory,
          ),
        ],
        parameters: {
          messages: count,
          keys,
          payloadBytes,
          batchSize: BATCH_SIZE,
          pollIntervalMs: POLL_INTERVAL_MS,
          shards: SHARDS,
          partitions: PARTITIONS,
          onPublished: 'mark',
          reps: ctx.reps,
        },
        details,
      };
    } finally {
      await dropSchema(knex, template).catch(() => {});
      await deleteTopics(kafka, [warmupTopic]);
      await knex.destroy();
    }
  },
};
export default relayThroughput;

function summary(run: RunResult) {
  return {
    durationMs: round(run.durationMs, 1),
    throughput: round(run.throughput, 1),
    recordsOnTopic: run.recordsOnTopic,
    peakRssMiB: run.peakRssMiB.map((m) => round(m, 1)),
    shardsOwnedAtStart: run.shards.map((s) => s.length),
    ...(run.balancedAfterMs !== undefined
      ? {
          sharesBalancedAfterMs: run.balancedAfterMs && round(run.balancedAfterMs),
          throughputOnceSettled: run.settledThroughput && round(run.settledThroughput, 1),
        }
      : {}),
    profile: run.diagnostics.map(profile),
  };
}

interface RunInput {
  dbUrl: string;
  kafka: ReturnType<typeof kafkaClient>;
  template: string;
  warmupTopic: string;
  count: number;
}

async function runBaseline(ctx: BenchContext, input: RunInput): Promise<RunResult> {
  const topic = uniqueName('baseline');
  await createTopics(input.kafka, [topic]);
  const child = new OutboxProcess('sendbatch', ctx.log);
  try {
    child.send({
      type: 'init',
      mode: 'sendbatch',
      databaseUrl: input.dbUrl,
      brokers: ctx.services.kafkaBrokers,
      sourceSchema: input.template,
      topic,
      warmupTopic: input.warmupTopic,
      batchSize: BATCH_SIZE,
    });
    const ready = await child.next('ready', 120_000);
    if (ready.loaded !== input.count) throw new Error(`baseline loaded ${ready.loaded} rows, expected ${input.count}`);
    const started = child.next('started', 10_000);
    const done = child.next('done', RUN_TIMEOUT_MS);
    done.catch(() => {}); // awaited below, after `started`
    child.send({ type: 'start' });
    const durationMs = (await done).at - (await started).at;
    const diagnostics = await child.report();
    const { peakRssMiB } = await child.memory();
    await child.stop();
    const recordsOnTopic = await recordCount(input.kafka, topic);
    if (recordsOnTopic !== input.count) throw new Error(`baseline put ${recordsOnTopic} records on ${topic}`);
    return {
      durationMs,
      throughput: (input.count * 1000) / durationMs,
      recordsOnTopic,
      peakRssMiB: [peakRssMiB],
      shards: [],
      diagnostics: [diagnostics],
    };
  } finally {
    child.kill();
    await deleteTopics(input.kafka, [topic]);
  }
}

async function runRelays(
  ctx: BenchContext,
  input: RunInput & { knex: ReturnType<typeof connect>; relays: number },
): Promise<RunResult> {
  const schema = uniqueName(`relay${input.relays}`);
  const topic = schema;
  await createTopics(input.kafka, [topic]);
  await cloneOutbox(input.knex, input.template, schema, topic);
  const children = Array.from({ length: input.relays }, (_, i) => new OutboxProcess(`relay-${i + 1}`, ctx.log));
  try {
    for (const [i, child] of children.entries()) {
      const relay: RelaySettings = {
        batchSize: BATCH_SIZE,
        pollIntervalMs: POLL_INTERVAL_MS,
        instanceId: `bench-relay-${i + 1}`,
      };
      child.send({
        type: 'init',
        mode: 'relay',
        databaseUrl: input.dbUrl,
        brokers: ctx.services.kafkaBrokers,
        schema,
        warmupTopic: input.warmupTopic,
        relay,
        reportProgress: true,
      });
    }
    await Promise.all(children.map((c) => c.next('ready', 60_000)));
    const counts = children.map(() => 0);
    const owned = children.map(() => 0);
    const leaseTimeline: Array<{ at: number; owned: number[] }> = [];
    // When every relay first holds its fair share (within one shard): before that, one does the work.
    const floor = Math.floor(SHARDS / input.relays);
    // Published so far when the split first settled: what is left was moved by all relays.
    let settled: { at: number; published: number } | undefined;
    for (const [i, child] of children.entries()) {
      child.on((m) => {
        if (m.type !== 'leases') return;
        owned[i] = m.owned;
        leaseTimeline.push({ at: m.at, owned: [...owned] });
        if (!settled && owned.every((n) => n >= floor)) {
          settled = { at: m.at, published: counts.reduce((a, b) => a + b, 0) };
        }
      });
    }
    let last = 0;
    const finished = new Promise<void>((resolve) => {
      for (const [i, child] of children.entries()) {
        child.on((m) => {
          if (m.type !== 'progress') return;
          counts[i] = m.count;
          last = Math.max(last, m.at);
          if (counts.reduce((a, b) => a + b, 0) >= input.count) resolve();
        });
      }
    });
    const started = Promise.all(children.map((c) => c.next('started', 30_000)));
    for (const child of children) child.send({ type: 'start' });
    const starts = await started;
    // A child that fails rejects at once instead of leaving the wait to the timeout.
    await withTimeout(
      Promise.race([finished, ...children.map((c) => c.failed)]),
      RUN_TIMEOUT_MS,
      () => `relays published ${counts.join('+')} of ${input.count}`,
    );
    const startedAt = Math.min(...starts.map((s) => s.at));
    const durationMs = last - startedAt;
    // The rate once every relay held its share, if enough of the backlog was left to time it.
    const settledAfterMs = settled ? Math.max(0, settled.at - startedAt) : null;
    const rest = settled ? input.count - settled.published : 0;
    const settledThroughput =
      settled && rest >= input.count / 10 && last > settled.at ? (rest * 1000) / (last - settled.at) : null;
    const diagnostics = await Promise.all(children.map((c) => c.report()));
    const memory = await Promise.all(children.map((c) => c.memory()));
    await Promise.all(children.map((c) => c.stop()));
    const stats = await createOutbox({ knex: input.knex, schema }).stats();
    if (stats.pending !== 0) throw new Error(`${stats.pending} messages still pending after the relays finished`);
    const recordsOnTopic = await recordCount(input.kafka, topic);
    if (recordsOnTopic < input.count) throw new Error(`relays put only ${recordsOnTopic} records on ${topic}`);
    return {
      durationMs,
      throughput: (input.count * 1000) / durationMs,
      recordsOnTopic,
      peakRssMiB: memory.map((m) => m.peakRssMiB),
      shards: starts.map((s) => s.shards),
      diagnostics,
      balancedAfterMs: settledAfterMs,
      settledThroughput,
    };
  } finally {
    for (const child of children) child.kill();
    await deleteTopics(input.kafka, [topic]);
    await dropSchema(input.knex, schema).catch(() => {});
  }
}
