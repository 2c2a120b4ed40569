import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createOutbox } from '@eventual/outbox';
import type { Kafka } from 'kafkajs';
import type { Knex } from 'knex';
import { OutboxProcess } from '../child.js';
import { CpuMeter, type CpuUsage } from '../cpu-meter.js';
import {
  connect,
  createTopics,
  deleteTopics,
  dropSchema,
  kafkaClient,
  messageOf,
  PARTITIONS,
  SHARDS,
  uniqueName,
} from '../fixtures.js';
import { type BenchContext, type Benchmark, figure, type Sample } from '../harness.js';
import { ACKS_ALL, BASELINE_PRODUCER } from '../kafka-settings.js';
import { paced } from '../pacer.js';
import { profile } from '../profile.js';
import { startReceiver } from '../receiver.js';
import { type LatencyHistogram, latencyHistogram, mergeHistograms, round, summariseLatencies } from '../stats.js';
import { renderLatencyChart } from '../svg.js';

const RATE_PER_S = 1_000;
/** Lower offered rates measured once each after the figures: where the curve bends. */
const CURVE_RATES_PER_S = [250, 500];
const POLL_INTERVAL_MS = 1_000; // high on purpose: only a working NOTIFY wake-up gets under 50 ms
const BATCH_SIZE = 500;
const KEYS = 1_000;
const PAYLOAD_BYTES = 300;
interface ModeRun {
  latenciesMs: number[];
  achievedRatePerS: number;
  maxLagMs: number;
  /** Event loop delay of this (the measuring) process during the measured part. */
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  /** Producer side: transaction (outbox) or send call (baseline) durations. */
  sendMs: ReturnType<typeof summariseLatencies>;
  /** CPU of the whole machine while the measured load ran (relay child included). */
  cpu: CpuUsage;
  relay?: ReturnType<typeof profile>;
}

interface Load {
  ratePerS: number;
  warmupMs: number;
  durationMs: number;
}

/**
 * Issue 7, measurement 2. Messages at a steady 1,000/s, each enqueued in its own
 * transaction; latency from the commit returning to the record being handed to a
 * kafkajs consumer in the same process (one clock). The relay runs in a child
 * process with a 1 s poll interval, so only the NOTIFY wake-up can make it fast.
 * Baseline: plain kafkajs `send` of one record per call at the same rate and producer
 * settings as the relay (idempotent, one request in flight, acks -1), timed from
 * the call to `send` to the same consumer. Then one repetition at lower rates, to
 * show where latency turns from transport time into queueing.
 */
const commitLatency: Benchmark = {
  name: 'commit-latency',
  order: 2,
  title: 'Commit-to-Kafka latency',
  description:
    'At a steady 1,000 messages/s, each enqueued in its own transaction: time from commit to the record being ' +
    'readable by a kafkajs consumer (same process, same clock), relay in a child process with pollIntervalMs ' +
    '1000; baseline: plain kafkajs send of one record per call at the same rate with the relay producer ' +
    'settings (idempotent, maxInFlightRequests 1, acks -1), measured the same way.',
  async run(ctx) {
    const load: Load = { ratePerS: RATE_PER_S, warmupMs: ctx.size(3_000, 500), durationMs: ctx.size(30_000, 2_000) };
    const dbUrl = await ctx.services.createDatabase('bench_latency');
    const knex = connect(dbUrl, 10);
    const kafka = kafkaClient(ctx.services.kafkaBrokers);
    const warmupTopic = uniqueName('warmup');
    const env: Env = { ctx, knex, kafka, dbUrl, warmupTopic };
    try {
      await createTopics(kafka, [warmupTopic], 1);
      const p50: Sample[] = [];
      const p99: Sample[] = [];
      const max: Sample[] = [];
      const histograms: { outbox: LatencyHistogram[]; baseline: LatencyHistogram[] } = { outbox: [], baseline: [] };
      const details: unknown[] = [];
      for (let rep = 1; rep <= ctx.reps; rep++) {
        const { result, load: machine } = await ctx.repetition(rep, () => runBoth(env, load));
        const { baseline, outbox } = result;
        const b = summariseLatencies(baseline.latenciesMs);
        const o = summariseLatencies(outbox.latenciesMs);
        ctx.log(`rep ${rep}: ${describe(o, outbox)}; kafkajs ${describe(b, baseline)}`);
        p50.push({ value: o.p50, baseline: b.p50 });
        p99.push({ value: o.p99, baseline: b.p99 });
        max.push({ value: o.max, baseline: b.max });
        histograms.outbox.push(latencyHistogram(outbox.latenciesMs));
        histograms.baseline.push(latencyHistogram(baseline.latenciesMs));
        details.push({
          rep,
          load: machine,
          outbox: { latencyMs: rounded(o), ...modeDetails(outbox) },
          baseline: { latencyMs: rounded(b), ...modeDetails(baseline) },
        });
      }
      const curve: CurvePoint[] = [];
      for (const ratePerS of ctx.smoke ? [] : CURVE_RATES_PER_S) {
        const { result, load: machine } = await ctx.repetition(1, () =>
          runBoth(env, { ratePerS, warmupMs: load.warmupMs, durationMs: 20_000 }),
        );
        const point = curvePoint(ratePerS, result.outbox, result.baseline, machine.noisy);
        ctx.log(
          `at ${ratePerS}/s: outbox p50 ${point.outbox.p50} p99 ${point.outbox.p99} ms; kafkajs p99 ${point.baseline.p99} ms`,
        );
        curve.push(point);
      }
      const merged = { outbox: mergeHistograms(histograms.outbox), baseline: mergeHistograms(histograms.baseline) };
      const chart = `${commitLatency.name}.svg`;
      const spec = {
        unit: 'ms',
        baselineLabel: 'kafkajs send, 1 record per call',
        better: 'lower' as const,
      };
      const figures = [
        figure({ id: 'latency.p50', label: 'Commit-to-Kafka latency p50', ...spec }, p50),
        figure(
          {
            id: 'latency.p99',
            label: 'Commit-to-Kafka latency p99',
            ...spec,
            target: { on: 'value', op: '<=', threshold: 50 },
          },
          p99,
        ),
        figure({ id: 'latency.max', label: 'Commit-to-Kafka latency max', ...spec }, max),
      ];
      await writeFile(
        join(ctx.resultsDir, chart),
        renderLatencyChart({
          title: `Commit-to-Kafka latency at ${RATE_PER_S.toLocaleString('en')} msg/s (${ctx.reps} reps merged)`,
          targetMs: 50,
          series: [
            {
              label: 'outbox + relay',
              color: '#1f6feb',
              histogram: merged.outbox,
              p50: figures[0]!.value,
              p99: figures[1]!.value,
            },
            {
              label: 'kafkajs send (baseline)',
              color: '#8b949e',
              histogram: merged.baseline,
              p50: figures[0]!.baseline,
              p99: figures[1]!.baseline,
            },
          ],
        }),
      );
      return {
        figures,
        parameters: {
          ratePerS: RATE_PER_S,
          warmupMs: load.warmupMs,
          durationMs: load.durationMs,
          messagesPerRep: (RATE_PER_S * load.durationMs) / 1000,
          pollIntervalMs: POLL_INTERVAL_MS,
          batchSize: BATCH_SIZE,
          keys: KEYS,
          payloadBytes: PAYLOAD_BYTES,
          shards: SHARDS,
          partitions: PARTITIONS,
          producerPool: 10,
          reps: ctx.reps,
        },
        details: { reps: details, loadCurve: curve, histogramsMs: merged },
        notes: notes(details, curve),
        artefacts: [chart],
      };
    } finally {
      await deleteTopics(kafka, [warmupTopic]);
      await knex.destroy();
    }
  },
};
export default commitLatency;

interface Env {
  ctx: BenchContext;
  knex: Knex;
  kafka: Kafka;
  dbUrl: string;
  warmupTopic: string;
}

async function runBoth(env: Env, load: Load): Promise<{ baseline: ModeRun; outbox: ModeRun }> {
  return { baseline: await runBaseline(env.kafka, load), outbox: await runOutbox(env, load) };
}

function describe(s: ReturnType<typeof summariseLatencies>, run: ModeRun): string {
  return `p50 ${s.p50.toFixed(1)} p99 ${s.p99.toFixed(1)} max ${s.max.toFixed(1)} ms (${run.achievedRatePerS.toFixed(0)}/s)`;
}

interface CurvePoint {
  offeredPerS: number;
  noisy: boolean;
  outbox: { achievedPerS: number; p50: number; p99: number; max: number; busyCores: number };
  baseline: { achievedPerS: number; p50: number; p99: number; max: number; busyCores: number };
}

function curvePoint(offeredPerS: number, outbox: ModeRun, baseline: ModeRun, noisy: boolean): CurvePoint {
  const point = (run: ModeRun) => {
    const s = summariseLatencies(run.latenciesMs);
    return {
      achievedPerS: round(run.achievedRatePerS, 0),
      p50: round(s.p50, 1),
      p99: round(s.p99, 1),
      max: round(s.max, 1),
      busyCores: run.cpu.busyCores,
    };
  };
  return { offeredPerS, noisy, outbox: point(outbox), baseline: point(baseline) };
}

/** Markdown for BENCHMARKS.md: the offered vs achieved rate and the load curve. */
function notes(details: unknown[], curve: CurvePoint[]): string[] {
  const reps = details as Array<{
    outbox: { achievedRatePerS: number; cpuDuringLoad: CpuUsage };
    baseline: { achievedRatePerS: number; cpuDuringLoad: CpuUsage };
  }>;
  const lines = [
    `Achieved rate per repetition (offered ${RATE_PER_S}/s): outbox ${reps.map((r) => r.outbox.achievedRatePerS).join(', ')}; ` +
      `kafkajs ${reps.map((r) => r.baseline.achievedRatePerS).join(', ')}. Machine busy (cores of 2) during the outbox ` +
      `load: ${reps.map((r) => r.outbox.cpuDuringLoad.busyCores).join(', ')}.`,
  ];
  if (curve.length > 0) {
    lines.push(
      '',
      'Load curve (one repetition per rate, same method):',
      '',
      '| offered msg/s | outbox achieved | outbox p50 / p99 / max ms | kafkajs p50 / p99 / max ms | busy cores (outbox) |',
      '|---:|---:|---|---|---:|',
      ...curve.map(
        (c) =>
          `| ${c.offeredPerS} | ${c.outbox.achievedPerS} | ${c.outbox.p50} / ${c.outbox.p99} / ${c.outbox.max} | ` +
          `${c.baseline.p50} / ${c.baseline.p99} / ${c.baseline.max} | ${c.outbox.busyCores}${c.noisy ? ' (noisy)' : ''} |`,
      ),
    );
  }
  return lines;
}

function modeDetails(run: ModeRun) {
  return {
    achievedRatePerS: round(run.achievedRatePerS, 1),
    pacerMaxLagMs: round(run.maxLagMs),
    measuringProcessEventLoopDelayMs: run.eventLoopDelayMs,
    sendOrTransactionMs: rounded(run.sendMs),
    cpuDuringLoad: run.cpu,
    ...(run.relay ? { relayProcess: run.relay } : {}),
  };
}

function rounded(s: ReturnType<typeof summariseLatencies>) {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, round(v)]));
}

/** Warm-up load (not measured), then the measured load; latencies of the measured part. */
async function measure(
  load: Load,
  send: (i: number, measured: boolean) => Promise<void>,
  settle: () => Promise<number[]>,
): Promise<Omit<ModeRun, 'relay'>> {
  await paced(load.ratePerS, load.warmupMs, (i) => send(i, false));
  const offset = (load.ratePerS * load.warmupMs) / 1000;
  const sendMs: number[] = [];
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const meter = await CpuMeter.start();
  const run = await paced(load.ratePerS, load.durationMs, async (i) => {
    const started = performance.now();
    await send(offset + i, true);
    sendMs.push(performance.now() - started);
  });
  const cpu = await meter.stop();
  loop.disable();
  const ms = (ns: number) => round(ns / 1e6);
  return {
    latenciesMs: await settle(),
    achievedRatePerS: (run.sent * 1000) / run.elapsedMs,
    maxLagMs: run.maxLagMs,
    eventLoopDelayMs: { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) },
    sendMs: summariseLatencies(sendMs),
    cpu,
  };
}

async function runOutbox(input: Env, load: Load): Promise<ModeRun> {
  const schema = uniqueName('latency');
  const topic = schema;
  const outbox = createOutbox({ knex: input.knex, schema });
  await outbox.migrate({ shards: SHARDS });
  await createTopics(input.kafka, [topic]);
  const relay = new OutboxProcess('relay', input.ctx.log);
  const receiver = await startReceiver(input.kafka, topic);
  try {
    relay.send({
      type: 'init',
      mode: 'relay',
      databaseUrl: input.dbUrl,
      brokers: input.ctx.services.kafkaBrokers,
      schema,
      warmupTopic: input.warmupTopic,
      relay: { batchSize: BATCH_SIZE, pollIntervalMs: POLL_INTERVAL_MS, instanceId: 'bench-latency-relay' },
      reportProgress: false,
    });
    await relay.next('ready', 60_000);
    const started = relay.next('started', 30_000);
    relay.send({ type: 'start' });
    await started;
    const committedAt = new Map<string, number>();
    const run = await measure(
      load,
      async (i, measured) => {
        let id = '';
        await input.knex.transaction(async (trx) => {
          id = (await outbox.enqueue(trx, messageOf(i, topic, KEYS, PAYLOAD_BYTES))).id;
        });
        const at = performance.now();
        if (measured) committedAt.set(id, at);
      },
      async () => {
        await Promise.race([receiver.waitFor(committedAt.keys(), 60_000), relay.failed]);
        return [...committedAt].map(([id, at]) => receiver.receivedAt.get(id)! - at);
      },
    );
    return { ...run, relay: profile(await relay.report()) };
  } finally {
    await receiver.stop();
    await relay.stop();
    await deleteTopics(input.kafka, [topic]);
    await dropSchema(input.knex, schema).catch(() => {});
  }
}

async function runBaseline(kafka: Kafka, load: Load): Promise<ModeRun> {
  const topic = uniqueName('latency_baseline');
  await createTopics(kafka, [topic]);
  const producer = kafka.producer(BASELINE_PRODUCER);
  await producer.connect();
  const receiver = await startReceiver(kafka, topic);
  try {
    const sentAt = new Map<string, number>();
    return await measure(
      load,
      async (i, measured) => {
        const { key, payload } = messageOf(i, topic, KEYS, PAYLOAD_BYTES);
        const id = randomUUID();
        if (measured) sentAt.set(id, performance.now());
        await producer.send({
          topic,
          // The headers the outbox puts on every record, so both sides send the same bytes.
          messages: [{ key, value: JSON.stringify(payload), headers: standardHeaders(id) }],
          acks: ACKS_ALL,
        });
      },
      async () => {
        await receiver.waitFor(sentAt.keys(), 60_000);
        return [...sentAt].map(([id, at]) => receiver.receivedAt.get(id)! - at);
      },
    );
  } finally {
    await receiver.stop();
    await producer.disconnect();
    await deleteTopics(kafka, [topic]);
  }
}

function standardHeaders(id: string): Record<string, string> {
  return { 'message-id': id, 'message-type': 'OrderCreated', 'correlation-id': id, 'causation-id': id };
}
