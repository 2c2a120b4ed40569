import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  allTopics,
  DEMO_FAULTS,
  demoSeed,
  GROUP_SETTINGS,
  PARTITIONS,
  runDemo,
  type SeedData,
  type Summary,
  seededRandom,
  type World,
} from '@eventual/example-order-pay-ship';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import { connect, createTopics, deleteTopics, kafkaClient, sleep, uniqueName } from '../fixtures.js';
import { type BenchContext, type Benchmark, figure, type Sample } from '../harness.js';
import { ACKS_ALL, BASELINE_PRODUCER } from '../kafka-settings.js';
import { type LatencyHistogram, latencyHistogram, mergeHistograms, round, summariseLatencies } from '../stats.js';
import { renderLatencyChart } from '../svg.js';

/**
 * Twice the demo's 200 orders (in a world scaled to match, see scaledSeed): one
 * repetition takes 50-60 s on 2 cores (the orders settle in ~40 s; starting and
 * stopping the services, the checks and the baseline add the rest), long enough that
 * the backlog, not the last few slow carrier calls, sets the rate.
 */
const ORDERS = 400;
/** The demo's defaults: its order count (what its world is sized for), clients placing orders, seed. */
const DEMO_ORDERS = 200;
const CONCURRENCY = 16;
const SEED = 1;
/** Products with less stock than this are the scarce ones orders race for (see demoSeed). */
const SCARCE_BELOW = 100;

/** One request/reply round trip of a saga: the command the orchestrator sent and to whom. */
interface Hop {
  to: 'payment' | 'warehouse';
  type: string;
}

/** Per order, in the order the orders were placed: the saga's commands, in the order sent. */
type Plan = Hop[][];

interface Completion {
  /** Per order: placed -> settled (saga: COMPLETED or CANCELLED; baseline: last reply received). */
  completionMs: number[];
  /** First placed -> last settled. */
  spanMs: number;
  ordersPerS: number;
}

interface SagaRun extends Completion {
  summary: Summary;
  plan: Plan;
  peakRssMiB: Record<string, number | null>;
}

interface BaselineRun extends Completion {
  messages: number;
}

/**
 * Issue 7, measurement 4. The example order-pay-ship as the demo runs it: order,
 * payment, warehouse and the carrier simulator as separate processes, the demo's
 * order mix and carrier faults, orders placed through the order API by 16 concurrent
 * clients (all sagas then run at once, so completion time includes queueing behind
 * the backlog). Orders settled per second, first placed to last settled, and each
 * order's time from placed to COMPLETED or CANCELLED, both from the order database's
 * clock. The invariants are checked after each repetition: a broken one fails the
 * benchmark. Baseline: each order's commands as the saga sent them (read from the
 * order service's outbox: compensations and re-sends included), as plain kafkajs
 * request/reply over fresh topics, participants answering at once. No database, no
 * outbox, inbox or saga state, and no carrier: pure messaging. (The carrier's delays
 * and hangs only mean something together with the saga's timeouts and check-back,
 * which the baseline does not have; left out rather than imitated.)
 */
const sagaEndToEnd: Benchmark = {
  name: 'saga-end-to-end',
  order: 4,
  title: 'End-to-end saga (example order-pay-ship)',
  description:
    'The example order-pay-ship end to end (order, payment, warehouse and the carrier simulator as separate ' +
    "processes; the demo's order mix and carrier faults; orders placed through the order API by 16 concurrent " +
    'clients, so all sagas run at once and completion time includes queueing): orders settled per second from ' +
    'the first placed to the last settled, and per order the time from placed to COMPLETED or CANCELLED (order ' +
    'database clock); every invariant of the demo is checked after each repetition. Baseline: the same commands ' +
    "per order (read from the order service's outbox, compensations and re-sends included) as plain kafkajs " +
    'request/reply over fresh topics with the same partitions and consumer settings and the producer settings ' +
    "of the outbox's Kafka publisher (one record per send), participants replying at once: pure messaging, no " +
    'database, no outbox/inbox/saga state, no carrier.',
  async run(ctx) {
    const orders = ctx.size(ORDERS, 24);
    const seedData = scaledSeed(orders);
    const throughput: Sample[] = [];
    const p50: Sample[] = [];
    const p99: Sample[] = [];
    const histograms: { saga: LatencyHistogram[]; baseline: LatencyHistogram[] } = { saga: [], baseline: [] };
    const details: RepDetails[] = [];
    for (let rep = 1; rep <= ctx.reps; rep++) {
      const { result, load } = await ctx.repetition(rep, async () => {
        const saga = await runSaga(ctx, orders, seedData);
        const baseline = await runBaseline(ctx, saga.plan);
        return { saga, baseline };
      });
      const { saga, baseline } = result;
      const s = summariseLatencies(saga.completionMs);
      const b = summariseLatencies(baseline.completionMs);
      ctx.log(
        `rep ${rep}: saga ${saga.ordersPerS.toFixed(2)} orders/s, p50 ${s.p50.toFixed(0)} p99 ${s.p99.toFixed(0)} ms ` +
          `(${outcomeText(saga.summary)}); kafkajs ${baseline.ordersPerS.toFixed(1)} orders/s, ` +
          `p50 ${b.p50.toFixed(0)} p99 ${b.p99.toFixed(0)} ms`,
      );
      throughput.push({ value: saga.ordersPerS, baseline: baseline.ordersPerS });
      p50.push({ value: s.p50, baseline: b.p50 });
      p99.push({ value: s.p99, baseline: b.p99 });
      histograms.saga.push(latencyHistogram(saga.completionMs));
      histograms.baseline.push(latencyHistogram(baseline.completionMs));
      details.push(repDetails(rep, load, saga, baseline));
    }

    const baselineLabel = 'plain kafkajs request/reply, same commands per order, no DB, no carrier';
    const latency = { unit: 'ms', baselineLabel, better: 'lower' as const };
    const figures = [
      figure(
        {
          id: 'orders.per-s',
          label: 'Saga orders settled per second',
          unit: 'orders/s',
          baselineLabel,
          better: 'higher',
        },
        throughput,
      ),
      figure({ id: 'completion.p50', label: 'Order placed to final state p50', ...latency }, p50),
      figure({ id: 'completion.p99', label: 'Order placed to final state p99', ...latency }, p99),
    ];
    const merged = { saga: mergeHistograms(histograms.saga), baseline: mergeHistograms(histograms.baseline) };
    const chart = `${sagaEndToEnd.name}.svg`;
    await writeFile(
      join(ctx.resultsDir, chart),
      renderLatencyChart({
        title: `Order completion time, ${orders} orders of the demo's mix (${ctx.reps} reps merged)`,
        xLabel: 'order placed to COMPLETED or CANCELLED (baseline: first command sent to last reply), log scale',
        yLabel: 'share of orders per bucket',
        series: [
          {
            label: 'saga (outbox, inbox, saga state, carrier)',
            color: '#1f6feb',
            histogram: merged.saga,
            p50: figures[1]!.value,
            p99: figures[2]!.value,
          },
          {
            label: 'kafkajs request/reply (baseline)',
            color: '#8b949e',
            histogram: merged.baseline,
            p50: figures[1]!.baseline,
            p99: figures[2]!.baseline,
          },
        ],
      }),
    );
    return {
      figures,
      parameters: {
        orders,
        concurrency: CONCURRENCY,
        seed: SEED,
        customers: seedData?.customers.length ?? 40,
        scarceStock: Object.fromEntries(
          (seedData ?? demoSeed(seededRandom(SEED))).products
            .filter((p) => p.stock < SCARCE_BELOW)
            .map((p) => [p.sku, p.stock]),
        ),
        carrierFaults: DEMO_FAULTS,
        partitions: PARTITIONS,
        reps: ctx.reps,
      },
      details: { reps: details, histogramsMs: merged },
      notes: notes(details),
      artefacts: [chart],
    };
  },
};
export default sagaEndToEnd;

/**
 * The demo's world sized for `orders`: its 200 orders meet its 40 customers and a
 * scarce stock (40 teapots, 6 rare teas) they race for. For `scale` times the orders,
 * the same customers `scale` times over (same balances, new ids) and `scale` times the
 * scarce stock, so each order has the same odds of being paid, reserved and shipped
 * as in the demo. Up to 200 orders: the demo's own world (undefined).
 */
function scaledSeed(orders: number): SeedData | undefined {
  const scale = Math.round(orders / DEMO_ORDERS);
  if (scale <= 1) return undefined;
  // As runDemo draws it when given no seed data.
  const demo = demoSeed(seededRandom(SEED));
  return {
    customers: Array.from({ length: scale }, (_, copy) =>
      demo.customers.map((c) => (copy === 0 ? c : { ...c, id: `${c.id}-${copy + 1}` })),
    ).flat(),
    products: demo.products.map((p) => (p.stock < SCARCE_BELOW ? { ...p, stock: p.stock * scale } : p)),
  };
}

/** Runs the demo against the bench's PostgreSQL and Kafka and reads what it needs before the services stop. */
async function runSaga(ctx: BenchContext, orders: number, seedData: SeedData | undefined): Promise<SagaRun> {
  let output = '';
  let inspected: Omit<SagaRun, 'summary'> | undefined;
  let world: Pick<World, 'topics' | 'databaseUrls'> | undefined;
  const summary = await runDemo({
    orders,
    concurrency: CONCURRENCY,
    seed: SEED,
    carrierFaults: DEMO_FAULTS,
    ...(seedData ? { seedData } : {}),
    infrastructure: { adminDatabaseUrl: ctx.services.adminDatabaseUrl, kafkaBrokers: ctx.services.kafkaBrokers },
    write: (text) => {
      output += text;
    },
    tty: false,
    inspect: async (w) => {
      world = w;
      inspected = await inspect(w);
    },
  });
  if (!summary.ok || !inspected) {
    const broken = summary.invariants.filter((i) => !i.ok).map((i) => `${i.name}: ${i.detail}`);
    throw new Error(
      `the saga run is not a result: ${broken.length > 0 ? broken.join('; ') : 'not every order settled'}` +
        `\n${output.slice(output.lastIndexOf('eventual demo:'))}`,
    );
  }
  if (world) await dropWorld(ctx, world);
  return { summary, ...inspected };
}

/** Per-order timings, the commands each saga sent, and the services' peak RSS (while they still run). */
async function inspect(world: World): Promise<Omit<SagaRun, 'summary'>> {
  const { rows } = await world.db.order.raw(
    `select id, extract(epoch from updated_at - created_at) * 1000 as ms from orders order by created_at, id`,
  );
  const [span] = (
    await world.db.order.raw(
      `select extract(epoch from max(updated_at) - min(created_at)) * 1000 as ms from orders
       where status in ('COMPLETED', 'CANCELLED')`,
    )
  ).rows as Array<{ ms: string | number }>;
  const { rows: commands } = await world.db.order.raw(
    'select key, topic, type from eventual.outbox where topic in (?, ?) order by id',
    [world.topics.paymentCommands, world.topics.warehouseCommands],
  );
  const hopsOf = new Map<string, Hop[]>();
  for (const c of commands as Array<{ key: string; topic: string; type: string }>) {
    const hop: Hop = { to: c.topic === world.topics.paymentCommands ? 'payment' : 'warehouse', type: c.type };
    const hops = hopsOf.get(c.key);
    if (hops) hops.push(hop);
    else hopsOf.set(c.key, [hop]);
  }
  const ordersRows = rows as Array<{ id: string; ms: string | number }>;
  const spanMs = Number(span?.ms ?? 0);
  const peakRssMiB: Record<string, number | null> = {};
  for (const [name, p] of Object.entries(world.processes)) peakRssMiB[name] = await peakRss(p.pid);
  return {
    completionMs: ordersRows.map((r) => Number(r.ms)),
    spanMs,
    ordersPerS: spanMs > 0 ? (ordersRows.length * 1000) / spanMs : 0,
    plan: ordersRows.map((r) => hopsOf.get(r.id) ?? []),
    peakRssMiB,
  };
}

/** VmHWM of a live process in MiB (Linux), null elsewhere. */
async function peakRss(pid: number | undefined): Promise<number | null> {
  if (pid === undefined) return null;
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return match ? round(Number(match[1]) / 1024, 1) : null;
  } catch {
    return null;
  }
}

/** The demo leaves its databases and topics (for a look afterwards); a benchmark repetition does not. */
async function dropWorld(ctx: BenchContext, world: Pick<World, 'topics' | 'databaseUrls'>): Promise<void> {
  await deleteTopics(kafkaClient(ctx.services.kafkaBrokers), allTopics(world.topics));
  const admin = connect(ctx.services.adminDatabaseUrl, 1);
  try {
    for (const url of Object.values(world.databaseUrls)) {
      const name = decodeURIComponent(new URL(url).pathname.slice(1));
      await admin
        .raw(`drop database if exists "${name.replace(/"/g, '""')}" with (force)`)
        .catch((error: unknown) => ctx.log(`could not drop database ${name}: ${String(error)}`));
    }
  } finally {
    await admin.destroy();
  }
}

/**
 * The saga's message choreography without the framework: the orders are started by
 * `CONCURRENCY` workers (like the demo's clients), and each order sends its commands
 * one after the other, every next one when the reply to the previous arrives. Three
 * roles with their own client, producer and consumer group, like the services:
 * order (sends commands, consumes replies), payment and warehouse (reply at once).
 * Same partitions, consumer settings and partitions processed concurrently as the
 * example; the producer settings of the outbox's Kafka publisher; kafkajs' default
 * offset commits (the example commits after every record: part of what it costs).
 */
async function runBaseline(ctx: BenchContext, plan: Plan): Promise<BaselineRun> {
  const brokers = ctx.services.kafkaBrokers;
  const topics = {
    payment: uniqueName('saga_payment'),
    warehouse: uniqueName('saga_warehouse'),
    replies: uniqueName('saga_replies'),
  };
  const kafka = kafkaClient(brokers, 'bench-saga-admin');
  await createTopics(kafka, Object.values(topics), PARTITIONS);
  const stops: Array<() => Promise<void>> = [];
  try {
    let messages = 0;
    const send = async (producer: Producer, topic: string, key: string, type: string, correlation: string) => {
      const id = randomUUID();
      messages += 1;
      await producer.send({
        topic,
        acks: ACKS_ALL,
        messages: [
          {
            key,
            value: JSON.stringify({ orderId: key, type }),
            headers: { 'message-id': id, 'message-type': type, 'correlation-id': correlation, 'causation-id': id },
          },
        ],
      });
    };
    // Participants: every command is answered at once.
    for (const role of ['payment', 'warehouse'] as const) {
      const kafka = kafkaClient(brokers, `bench-saga-${role}`);
      const { producer, stop } = await startRole(kafka, topics[role], async (key, correlation) => {
        await send(producer, topics.replies, key, 'saga-reply', correlation);
      });
      stops.push(stop);
    }
    // The order role: the next command on each reply; settled on the last one.
    const ids = plan.map(() => randomUUID());
    const indexOf = new Map<string, number>(ids.map((id, i) => [id, i]));
    const step = new Array<number>(plan.length).fill(0);
    const placedAt = new Array<number>(plan.length).fill(0);
    const settledAt = new Array<number>(plan.length).fill(0);
    let settled = 0;
    const next = async (producer: Producer, i: number) => {
      const hop = plan[i]![step[i]!];
      if (!hop) {
        settledAt[i] = performance.now();
        settled += 1;
        return;
      }
      await send(producer, topics[hop.to], ids[i]!, hop.type, ids[i]!);
    };
    const order = await startRole(kafkaClient(brokers, 'bench-saga-order'), topics.replies, async (key) => {
      const i = indexOf.get(key);
      if (i === undefined) return;
      step[i]! += 1;
      await next(order.producer, i);
    });
    stops.push(order.stop);

    let cursor = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (cursor < plan.length) {
          const i = cursor++;
          placedAt[i] = performance.now();
          await next(order.producer, i);
        }
      }),
    );
    const deadline = performance.now() + 120_000;
    while (settled < plan.length) {
      if (performance.now() > deadline)
        throw new Error(`baseline: ${plan.length - settled} of ${plan.length} orders never got their last reply`);
      await sleep(20);
    }
    const completionMs = plan.map((_, i) => settledAt[i]! - placedAt[i]!);
    const spanMs = Math.max(...settledAt) - Math.min(...placedAt);
    return { completionMs, spanMs, ordersPerS: (plan.length * 1000) / spanMs, messages };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await deleteTopics(kafka, Object.values(topics));
  }
}

/** A consumer group on `topic` (joined before this resolves) and a producer for its answers. */
async function startRole(
  kafka: Kafka,
  topic: string,
  onMessage: (key: string, correlation: string) => Promise<void>,
): Promise<{ producer: Producer; stop: () => Promise<void> }> {
  const producer = kafka.producer(BASELINE_PRODUCER);
  await producer.connect();
  const consumer: Consumer = kafka.consumer({ ...GROUP_SETTINGS, groupId: uniqueName('saga_baseline') });
  await consumer.connect();
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    // The example's subscriber works on 4 partitions at once (createKafkaSubscriber).
    partitionsConsumedConcurrently: 4,
    eachMessage: async ({ message }) => {
      const key = message.key?.toString() ?? '';
      await onMessage(key, message.headers?.['correlation-id']?.toString() ?? key);
    },
  });
  await joined;
  return {
    producer,
    stop: async () => {
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}

interface RepDetails {
  rep: number;
  load: unknown;
  saga: Record<string, unknown> & { outcomes: Record<string, number>; peakRssMiB: Record<string, number | null> };
  baseline: Record<string, unknown>;
  roundTripsPerOrder: Record<string, number>;
}

function repDetails(rep: number, load: unknown, saga: SagaRun, baseline: BaselineRun): RepDetails {
  const s = saga.summary;
  const commandsByType: Record<string, number> = {};
  const roundTripsPerOrder: Record<string, number> = {};
  for (const hops of saga.plan) {
    roundTripsPerOrder[hops.length] = (roundTripsPerOrder[hops.length] ?? 0) + 1;
    for (const h of hops) commandsByType[h.type] = (commandsByType[h.type] ?? 0) + 1;
  }
  return {
    rep,
    load,
    saga: {
      ordersPerS: round(saga.ordersPerS, 3),
      spanMs: round(saga.spanMs),
      completionMs: rounded(summariseLatencies(saga.completionMs)),
      outcomes: outcomes(s),
      byStatus: s.orders.byStatus,
      cancelReasons: s.orders.cancelReasons,
      placeMs: s.timing.placeMs,
      quietWhenChecked: s.timing.quiet,
      carrier: s.carrier,
      checkBack: s.checkBack,
      crashes: s.crashes,
      invariants: s.invariants.map((i) => `${i.ok ? 'ok' : 'FAIL'} ${i.name}: ${i.detail}`),
      commandsByType,
      peakRssMiB: saga.peakRssMiB,
    },
    baseline: {
      ordersPerS: round(baseline.ordersPerS, 3),
      spanMs: round(baseline.spanMs),
      completionMs: rounded(summariseLatencies(baseline.completionMs)),
      messages: baseline.messages,
    },
    roundTripsPerOrder,
  };
}

/** COMPLETED, and CANCELLED by reason ("CANCELLED: not reserved"), as counts. */
function outcomes(s: Summary): Record<string, number> {
  const out: Record<string, number> = { COMPLETED: s.orders.byStatus.COMPLETED ?? 0 };
  for (const [reason, n] of Object.entries(s.orders.cancelReasons)) out[`CANCELLED: ${reason}`] = n;
  return out;
}

function outcomeText(s: Summary): string {
  return Object.entries(outcomes(s))
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
}

/** Markdown for BENCHMARKS.md: the outcome mix, round trips per order and the services' memory. */
function notes(details: RepDetails[]): string[] {
  const lines = [
    'Outcomes per repetition: ' +
      details
        .map(
          (d) =>
            `${d.rep}: ${Object.entries(d.saga.outcomes)
              .map(([k, n]) => `${k} ${n}`)
              .join(', ')}`,
        )
        .join('; ') +
      '.',
    'Request/reply round trips per order (commands the saga sent, replayed by the baseline), orders with that many: ' +
      details
        .map(
          (d) =>
            `${d.rep}: ${Object.entries(d.roundTripsPerOrder)
              .map(([k, n]) => `${k} -> ${n}`)
              .join(', ')}`,
        )
        .join('; ') +
      '.',
  ];
  const rss = details.map((d) =>
    Object.entries(d.saga.peakRssMiB)
      .map(([k, v]) => `${k} ${v ?? '?'}`)
      .join(', '),
  );
  lines.push(`Peak RSS of each service process (MiB, VmHWM): ${rss.map((r, i) => `${i + 1}: ${r}`).join('; ')}.`);
  return lines;
}

function rounded(s: ReturnType<typeof summariseLatencies>) {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, round(v)]));
}
