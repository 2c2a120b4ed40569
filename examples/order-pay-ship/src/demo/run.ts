import { setTimeout as sleep } from 'node:timers/promises';
import { type CarrierFaults, DEMO_FAULTS, resolveFaults } from '../carrier/faults.js';
import type { SagaTiming } from '../order/saga.js';
import { demoSeed, type SeedData } from '../shared/demo-data.js';
import { seededRandom } from '../shared/random.js';
import { type Chaos, type ChaosOptions, DEFAULT_CHAOS, startChaos } from './chaos.js';
import { checkInvariants } from './invariants.js';
import { placeOrders, planOrders } from './load.js';
import { startProgress } from './progress.js';
import { collectFacts, formatSummary, type Summary } from './summary.js';
import { type RunningInfrastructure, startWorld, type World } from './world.js';

export interface DemoOptions {
  /** Orders to place. Default 200. */
  orders?: number;
  /** Orders in flight at once. Default 16. */
  concurrency?: number;
  /** SIGKILL and restart order, payment and warehouse at random during the run. */
  chaos?: boolean | Partial<ChaosOptions>;
  /** Seeds customers' balances, the order mix, chaos victims and carrier faults. Default 1. */
  seed?: number;
  /** Already running PostgreSQL and Kafka; otherwise a devstack is started (and stopped). */
  infrastructure?: RunningInfrastructure;
  /** How long to wait for every order to reach COMPLETED or CANCELLED. Default 5 minutes. */
  settleTimeoutMs?: number;
  /** How the carrier misbehaves. Default: slow 20%, timeout after booking 6%, lost 2%, refused 4%. */
  carrierFaults?: Partial<CarrierFaults>;
  timing?: Partial<SagaTiming>;
  /** Where the demo writes (progress and summary). Default stdout. */
  write?: (text: string) => void;
  /** Progress as one line rewritten in place. Default: when stdout is a terminal. */
  tty?: boolean;
  /** Aborts the run (Ctrl-C); everything started is stopped. */
  signal?: AbortSignal;
  /** Keep the services' logs even when everything went well. */
  keepLogs?: boolean;
  /** Replaces the generated customers and products. */
  seedData?: SeedData;
  /**
   * Called once every order settled and the invariants were checked, while the services
   * still run: a benchmark reads per-order timings and the services' memory here.
   */
  inspect?: (world: World) => Promise<void>;
}

/**
 * The demo: starts the world, fires a concurrent mix of orders at the order API
 * (optionally while killing services), waits until every order is COMPLETED or
 * CANCELLED, and checks the invariants against the databases. Resolves with the
 * summary (also written out); `summary.ok` says whether everything held.
 */
export async function runDemo(options: DemoOptions = {}): Promise<Summary> {
  const orderCount = options.orders ?? 200;
  const concurrency = options.concurrency ?? 16;
  const seed = options.seed ?? 1;
  const signal = options.signal ?? new AbortController().signal;
  const tty = options.tty ?? (options.write === undefined && process.stdout.isTTY === true);
  const write = options.write ?? ((text: string) => void process.stdout.write(text));
  const log = (line: string) => write(tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  const chaosOptions = options.chaos ? { ...DEFAULT_CHAOS, ...(options.chaos === true ? {} : options.chaos) } : null;
  const random = seededRandom(seed);
  const seedData = options.seedData ?? demoSeed(random);
  const carrierFaults = resolveFaults(options.carrierFaults ?? {}, DEMO_FAULTS);

  log(
    `eventual demo: ${orderCount} orders, concurrency ${concurrency}` +
      (chaosOptions ? `, chaos every ${chaosOptions.intervalMs} ms` : ''),
  );
  const world = await startWorld({
    ...(options.infrastructure ? { infrastructure: options.infrastructure } : {}),
    seed: seedData,
    carrierFaults,
    carrierSeed: seed,
    ...(options.timing ? { timing: options.timing } : {}),
    log,
    signal,
  });
  let summary: Summary | undefined;
  let chaos: Chaos | undefined;
  try {
    signal.throwIfAborted();
    const orders = planOrders(seedData, orderCount, random);
    let placedCount = 0;
    const progress = startProgress({
      orderUrl: world.orderUrl,
      total: orderCount,
      placed: () => placedCount,
      kills: () => (chaos ? Object.values(chaos.kills).reduce((a, b) => a + b, 0) : 0),
      write,
      tty,
    });
    try {
      if (chaosOptions) chaos = startChaos(world, random, chaosOptions, log);
      const placed = await placeOrders({
        orderUrl: world.orderUrl,
        orders,
        concurrency,
        signal,
        onPlaced: () => {
          placedCount += 1;
        },
      });
      const settled = await waitUntilSettled(world, placed.placed, options.settleTimeoutMs ?? 300_000, signal);
      await chaos?.stop();
      // Everything is running again; let in-flight messages (late replies, prepared
      // replies of abandoned attempts) drain, so the checks see the final state. (Not
      // after a missed deadline: then the summary shows what is stuck, as it is.)
      const quiet = settled && (await waitUntilQuiet(world, 30_000, signal));
      progress.stop();

      const facts = await collectFacts(world);
      const invariants = await checkInvariants(
        world.db,
        seedData,
        orders.filter((o) => !placed.refused.some((r) => r.id === o.id)).map((o) => o.id),
      );
      await options.inspect?.(world);
      const settleMs = facts.latency.spanMs;
      summary = {
        ok: settled && placed.refused.length === 0 && invariants.every((i) => i.ok),
        options: { orders: orderCount, concurrency, chaos: chaosOptions !== null, seed },
        orders: {
          placed: placed.placed,
          refusedByApi: placed.refused.length,
          byStatus: facts.byStatus,
          cancelReasons: facts.cancelReasons,
        },
        timing: {
          placeMs: placed.durationMs,
          settleMs,
          settled,
          quiet,
          ordersPerSecond: settleMs > 0 ? (placed.placed * 1000) / settleMs : 0,
          latencyP50Ms: facts.latency.p50,
          latencyP95Ms: facts.latency.p95,
          latencyMaxMs: facts.latency.max,
        },
        carrier: facts.carrier,
        checkBack: facts.checkBack,
        chaos: chaos ? { kills: chaos.kills, total: Object.values(chaos.kills).reduce((a, b) => a + b, 0) } : null,
        crashes: [...world.crashes],
        stuck: facts.stuck,
        invariants,
        logDir: null,
      };
      for (const refusal of placed.refused.slice(0, 5))
        log(`the order API refused order ${refusal.id} (${refusal.status}): ${refusal.error}`);
    } finally {
      progress.stop();
      await chaos?.stop();
    }
  } finally {
    // Logs stay when something went wrong (not when the user interrupted the run).
    const keepLogs = options.keepLogs === true || (summary?.ok !== true && !signal.aborted);
    if (summary && keepLogs) summary.logDir = world.logDir;
    log('stopping services');
    // Interrupted: do not wait long for services that may be talking to a Kafka that the
    // same Ctrl-C already stopped.
    await world.stop({ keepLogs, graceMs: signal.aborted ? 5_000 : 15_000 });
  }
  if (!summary) throw new Error('the demo ended without a summary');
  write(formatSummary(summary));
  return summary;
}

/** Until every placed order is COMPLETED or CANCELLED (read from the order database). */
async function waitUntilSettled(world: World, placed: number, timeoutMs: number, signal: AbortSignal) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await world.db.order.raw(
      `select count(*) filter (where status in ('COMPLETED', 'CANCELLED'))::int as settled from orders`,
    );
    if ((rows[0]?.settled ?? 0) >= placed) return true;
    await sleep(500, undefined, { signal });
  }
  return false;
}

/** Until no outbox has a pending or prepared message and no saga is mid-way (or the timeout). */
async function waitUntilQuiet(world: World, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let busy = 0;
    for (const service of ['order', 'payment', 'warehouse'] as const) {
      const { rows } = await world.db[service].raw(
        `select count(*)::int as n from eventual.outbox where state in ('pending', 'prepared')`,
      );
      busy += rows[0]?.n ?? 0;
    }
    const { rows } = await world.db.order.raw(
      `select count(*)::int as n from eventual.sagas where status in ('running', 'compensating')`,
    );
    busy += rows[0]?.n ?? 0;
    if (busy === 0) return true;
    await sleep(250, undefined, { signal });
  }
  return false;
}
