import { randomUUID } from 'node:crypto';
import { createOutbox } from '@eventual/outbox';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Knex } from 'knex';
import { connect, messageOf, sleep } from '../fixtures.js';
import { type Benchmark, figure, type Sample } from '../harness.js';
import { paced } from '../pacer.js';
import { round, summariseLatencies } from '../stats.js';

const KEYS = 1_000;
const PAYLOAD_BYTES = 300;
const RATES_PER_S = [200, 500];
/** Transactions per block; the sides alternate block by block so both see the same machine. */
const BLOCK = 100;

type Side = 'business' | 'enqueue' | 'previous' | 'traced';
const SIDES: Side[] = ['business', 'enqueue', 'previous', 'traced'];

/** Spans exported nowhere, only counted: the SDK's work (ids, attributes, batching) without an exporter's. */
let exportedSpans = 0;
const discard: SpanExporter = {
  export: (spans, done) => {
    exportedSpans += spans.length;
    done({ code: 0 });
  },
  shutdown: async () => {},
};

/**
 * An OpenTelemetry SDK registered only while the `traced` side runs (the other sides
 * measure the enqueue with none, its no-op path): a tracer provider batching to
 * `discard`, and the AsyncLocalStorage context manager a Node.js SDK installs.
 */
const sdk = {
  provider: new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard)] }),
  contextManager: new AsyncLocalStorageContextManager(),
  enter(side: Side) {
    if (side !== 'traced') return;
    context.setGlobalContextManager(this.contextManager.enable());
    trace.setGlobalTracerProvider(this.provider);
  },
  leave(side: Side) {
    if (side !== 'traced') return;
    trace.disable();
    context.disable();
  },
};

/**
/**
 * The enqueue as it was before this benchmark (commit 09e0d08): the same unnest insert
 * through knex.raw, unnamed, with pg_notify inside the caller's transaction. Measured in
 * the same run as a diagnostic, so the change is a ratio on the same machine too.
 */
async function previousEnqueue(trx: Knex.Transaction, i: number): Promise<void> {
  await trx.raw(
    `with inserted as (
      insert into eventual.outbox (id, topic, key, type, payload, headers, shard, state, next_check_at)
      select u.id, u.topic, u.key, u.type, u.payload::json, u.headers::jsonb,
             (u.key_hash % (select shard_count from eventual.outbox_settings))::int, 'pending', null
      from unnest(?::uuid[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[])
           as u(id, topic, key, type, payload, headers, key_hash)
      returning shard)
    select pg_notify('eventual_outbox', (select string_agg(distinct shard::text, ',') from inserted))`,
    previousBindings(i),
  );
}

/** What buildRow gave that statement (the ids, headers, JSON text and its re-parse); validation left out. */
function previousBindings(i: number): Knex.RawBinding[] {
  const m = messageOf(i, 'orders', KEYS, PAYLOAD_BYTES);
  const id = randomUUID();
  const headers = { 'message-id': id, 'message-type': m.type, 'correlation-id': id, 'causation-id': id };
  const payload = JSON.stringify(m.payload);
  JSON.parse(payload);
  return [[id], [m.topic], [m.key], [m.type], [payload], [JSON.stringify(headers)], [fnv(m.key)]];
}

function fnv(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}

interface SideRun {
  latenciesMs: number[];
  cpuUs: number;
  count: number;
}

/**
 * Issue "enqueue costs twice the peer's". One transaction inserts a business row
 * (the peer's work) and, on the measured side, enqueues one message with it:
 * `knex.transaction(trx => { insert; outbox.enqueue(trx, m) })`, the way users enqueue.
 * Baseline: the same transaction without the enqueue. Uncontended (one transaction at
 * a time) and at fixed rates (open loop), sides interleaved in blocks of 100
 * transactions (uncontended) or 1 s (rates), so both see the same machine. CPU per
 * transaction: this process's CPU (process.cpuUsage) over each side's blocks, which
 * includes the NOTIFY the outbox sends after each commit.
 *
 * Tracing (issue 13): those sides run with `@opentelemetry/api` installed and no SDK
 * registered, the no-op path every untraced service takes. A fourth side registers an
 * SDK for its blocks only (spans batched to an exporter that drops them) and enqueues
 * inside an active span, as a traced request does; its figures are against the
 * untraced enqueue: what turning tracing on costs.
 */
const enqueueCost: Benchmark = {
  name: 'enqueue-cost',
  order: 5,
  title: 'Enqueue cost in the caller transaction',
  description:
    'One transaction inserting a business row (bigserial id, text, int, 300-byte jsonb) plus outbox.enqueue of one ' +
    'message (300-byte payload), against the same transaction without the enqueue; knex, pool of 20, same ' +
    'process; sides interleaved in blocks; uncontended and at fixed rates. Tracing: the untraced sides run with ' +
    '@opentelemetry/api installed and no SDK; a traced side registers an SDK (spans batched, then dropped) for ' +
    'its blocks only and enqueues inside an active span.',
  async run(ctx) {
    const perSide = ctx.size(3_000, 200);
    const rateMs = ctx.size(1_000, 300);
    const rateBlocks = ctx.size(8, 2);
    const url = await ctx.services.createDatabase('bench_enqueue');
    const knex = connect(url, 20);
    try {
      const outbox = createOutbox({ knex });
      await outbox.migrate({ shards: 32 });
      await knex.raw(
        'create table orders (id bigserial primary key, customer text not null, amount int not null, body jsonb not null)',
      );
      const business = (trx: Knex.Transaction, i: number) => {
        const m = messageOf(i, 'orders', KEYS, PAYLOAD_BYTES);
        return trx.raw('insert into orders (customer, amount, body) values (?, ?, ?)', [
          m.key,
          i,
          JSON.stringify(m.payload),
        ]);
      };
      const tx: Record<Side, (i: number) => Promise<void>> = {
        business: (i) => knex.transaction(async (trx) => void (await business(trx, i))),
        enqueue: (i) =>
          knex.transaction(async (trx) => {
            await business(trx, i);
            await outbox.enqueue(trx, messageOf(i, 'orders', KEYS, PAYLOAD_BYTES));
          }),
        previous: (i) =>
          knex.transaction(async (trx) => {
            await business(trx, i);
            await previousEnqueue(trx, i);
          }),
        // The caller's span, as a traced request handler has, and the message's create span under it.
        traced: (i) =>
          trace.getTracer('bench').startActiveSpan('checkout', (span) =>
            knex
              .transaction(async (trx) => {
                await business(trx, i);
                await outbox.enqueue(trx, messageOf(i, 'orders', KEYS, PAYLOAD_BYTES));
              })
              .finally(() => span.end()),
          ),
      };
      for (let i = 0; i < ctx.size(300, 30); i++) {
        for (const side of SIDES) {
          sdk.enter(side);
          await tx[side](i).finally(() => sdk.leave(side)); // warm up
        }
      }

      const samples: Record<string, Sample[]> = {};
      const push = (id: string, value: number, baseline: number) => {
        samples[id] ??= [];
        samples[id]!.push({ value, baseline });
      };
      const details: unknown[] = [];
      for (let rep = 1; rep <= ctx.reps; rep++) {
        const { result, load } = await ctx.repetition(rep, async () => {
          const uncontended = await runUncontended(tx, perSide);
          const rates: Record<number, Record<Side, SideRun>> = {};
          for (const rate of RATES_PER_S) rates[rate] = await runPaced(tx, rate, rateMs, rateBlocks);
          return { uncontended, rates };
        });
        const s = (run: SideRun) => summariseLatencies(run.latenciesMs);
        const cpu = (run: SideRun) => run.cpuUs / run.count / 1000;
        const u = result.uncontended;
        push('uncontended.p50', s(u.enqueue).p50, s(u.business).p50);
        push('uncontended.cpu', cpu(u.enqueue), cpu(u.business));
        push('previous.p50', s(u.previous).p50, s(u.business).p50);
        push('previous.cpu', cpu(u.previous), cpu(u.business));
        push('traced.p50', s(u.traced).p50, s(u.enqueue).p50);
        push('traced.cpu', cpu(u.traced), cpu(u.enqueue));
        for (const rate of RATES_PER_S) {
          const r = result.rates[rate]!;
          push(`rate${rate}.p50`, s(r.enqueue).p50, s(r.business).p50);
          push(`rate${rate}.p99`, s(r.enqueue).p99, s(r.business).p99);
          push(`rate${rate}.previous.p99`, s(r.previous).p99, s(r.business).p99);
          push(`rate${rate}.cpu`, cpu(r.enqueue), cpu(r.business));
        }
        const summary = (runs: Record<Side, SideRun>) =>
          Object.fromEntries(
            SIDES.map((side) => [
              side,
              { ...roundAll(s(runs[side])), cpuMsPerTx: round(cpu(runs[side]), 3), count: runs[side].count },
            ]),
          );
        details.push({
          rep,
          load,
          uncontended: summary(u),
          rates: Object.fromEntries(RATES_PER_S.map((rate) => [rate, summary(result.rates[rate]!)])),
        });
        // Proof the traced side traced: a checkout and a create span per transaction.
        await sdk.provider.forceFlush();
        ctx.log(`rep ${rep}: traced side exported ${exportedSpans} spans so far`);
        ctx.log(
          `rep ${rep}: uncontended p50 ${round(s(u.enqueue).p50, 3)} vs ${round(s(u.business).p50, 3)} ms ` +
            `(previous enqueue ${round(s(u.previous).p50, 3)}); cpu ${round(cpu(u.enqueue), 3)} vs ${round(cpu(u.business), 3)} ms`,
        );
      }
      const ms = { unit: 'ms', better: 'lower' as const };
      const base = 'the same transaction without the enqueue';
      const untraced = 'the same enqueue with no SDK registered';
      const target = { on: 'ratio' as const, op: '<=' as const, threshold: 1.3 };
      const f = (id: string, label: string, extra: object = {}) =>
        figure({ id, label, baselineLabel: base, ...ms, ...extra }, samples[id]!);
      return {
        figures: [
          f('uncontended.p50', 'Insert + enqueue, uncontended, latency p50', { target }),
          f('uncontended.cpu', 'Insert + enqueue, uncontended, CPU of the application per transaction'),
          f('previous.p50', 'Insert + previous enqueue (09e0d08), uncontended, latency p50'),
          f('previous.cpu', 'Insert + previous enqueue (09e0d08), uncontended, CPU per transaction'),
          // Against the untraced enqueue: what registering an SDK adds (the untraced figures above are the no-SDK cost).
          f('traced.p50', 'Insert + enqueue in a span, OpenTelemetry SDK registered, uncontended, latency p50', {
            baselineLabel: untraced,
          }),
          f(
            'traced.cpu',
            'Insert + enqueue in a span, OpenTelemetry SDK registered, uncontended, CPU per transaction',
            {
              baselineLabel: untraced,
            },
          ),
          ...RATES_PER_S.flatMap((rate) => [
            f(`rate${rate}.p50`, `Insert + enqueue at ${rate}/s, latency p50`, rate === 200 ? { target } : {}),
            f(`rate${rate}.p99`, `Insert + enqueue at ${rate}/s, latency p99`),
            f(`rate${rate}.previous.p99`, `Insert + previous enqueue at ${rate}/s, latency p99`),
            f(`rate${rate}.cpu`, `Insert + enqueue at ${rate}/s, CPU per transaction`),
          ]),
        ],
        parameters: {
          perSide,
          block: BLOCK,
          rates: RATES_PER_S,
          rateBlockMs: rateMs,
          rateBlocks,
          payloadBytes: PAYLOAD_BYTES,
          knexPoolMax: 20,
          shards: 32,
          reps: ctx.reps,
        },
        details: { reps: details },
      };
    } finally {
      await knex.destroy();
    }
  },
};

function roundAll(summary: object): Record<string, number> {
  return Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, round(v as number, 3)]));
}

const emptyRuns = (): Record<Side, SideRun> =>
  Object.fromEntries(SIDES.map((side) => [side, { latenciesMs: [], cpuUs: 0, count: 0 }])) as unknown as Record<
    Side,
    SideRun
  >;

/** One transaction at a time, the sides alternating every BLOCK transactions. */
async function runUncontended(tx: Record<Side, (i: number) => Promise<void>>, perSide: number) {
  const runs = emptyRuns();
  for (let from = 0; from < perSide; from += BLOCK) {
    for (const side of SIDES) {
      const run = runs[side];
      sdk.enter(side);
      const cpu = process.cpuUsage();
      for (let i = from; i < Math.min(perSide, from + BLOCK); i++) {
        const t = performance.now();
        await tx[side](i);
        run.latenciesMs.push(performance.now() - t);
        run.count += 1;
      }
      await sleep(5); // the last commit's NOTIFY lands in this side's CPU
      const used = process.cpuUsage(cpu);
      sdk.leave(side);
      run.cpuUs += used.user + used.system;
    }
  }
  return runs;
}

/** Open loop at `rate`, the sides alternating every `blockMs`. */
async function runPaced(tx: Record<Side, (i: number) => Promise<void>>, rate: number, blockMs: number, blocks: number) {
  const runs = emptyRuns();
  let seq = 0;
  for (let b = 0; b < blocks; b++) {
    for (const side of SIDES) {
      const run = runs[side];
      sdk.enter(side);
      const cpu = process.cpuUsage();
      const { sent } = await paced(rate, blockMs, async () => {
        const t = performance.now();
        await tx[side](seq++);
        run.latenciesMs.push(performance.now() - t);
      });
      run.count += sent;
      await sleep(5);
      const used = process.cpuUsage(cpu);
      sdk.leave(side);
      run.cpuUs += used.user + used.system;
    }
  }
  return runs;
}

export default enqueueCost;
