import { orderFulfilment } from '../order/saga.js';
import { topicsFor } from '../shared/topics.js';
import type { InvariantResult } from './invariants.js';
import type { ServiceName } from './processes.js';
import type { World } from './world.js';

export interface StuckOrder {
  id: string;
  status: string;
  saga: string;
}

export interface Summary {
  /** True only if every invariant holds (and every order was placed and settled). */
  ok: boolean;
  options: { orders: number; concurrency: number; chaos: boolean; seed: number };
  orders: {
    placed: number;
    refusedByApi: number;
    byStatus: Record<string, number>;
    /** Why orders were cancelled, by the first words of their reason. */
    cancelReasons: Record<string, number>;
  };
  timing: {
    placeMs: number;
    /** From the first order placed until the last one settled. */
    settleMs: number;
    settled: boolean;
    /** Nothing was left in flight (outboxes empty, no saga mid-way) when the invariants were checked. */
    quiet: boolean;
    ordersPerSecond: number;
    latencyP50Ms: number;
    latencyP95Ms: number;
    latencyMaxMs: number;
  };
  carrier: { requests: Record<string, number>; shipments: Record<string, number> };
  /** Prepared ShipOrder replies the check-back resolved, by outcome. */
  checkBack: { committed: number; rolledBack: number };
  chaos: { kills: Record<ServiceName, number>; total: number } | null;
  /** Exits nobody asked for (restarted automatically). */
  crashes: string[];
  stuck: StuckOrder[];
  invariants: InvariantResult[];
  /** Kept when something failed. */
  logDir: string | null;
}

const countBy = (rows: Array<{ k: string; n: string | number }>) =>
  Object.fromEntries(rows.map((r) => [r.k, Number(r.n)]));

/** Reads what the summary reports from the databases. */
export async function collectFacts(world: World) {
  const byStatus = countBy(
    (await world.db.order.raw('select status as k, count(*) as n from orders group by status order by status')).rows,
  );
  const cancelReasons = countBy(
    (
      await world.db.order.raw(
        `select split_part(coalesce(reason, 'no reason'), ':', 1) as k, count(*) as n
         from orders where status = 'CANCELLED' group by 1 order by 2 desc`,
      )
    ).rows,
  );
  const [latency] = (
    await world.db.order.raw(
      `select coalesce(percentile_cont(0.5) within group (order by ms), 0) as p50,
              coalesce(percentile_cont(0.95) within group (order by ms), 0) as p95,
              coalesce(max(ms), 0) as max,
              min(created_at) as first_at, max(updated_at) as last_at
       from (select extract(epoch from updated_at - created_at) * 1000 as ms, created_at, updated_at
             from orders where status <> 'PENDING') settled`,
    )
  ).rows as Array<{ p50: number; p95: number; max: number; first_at: Date | null; last_at: Date | null }>;
  const requests = countBy(
    (await world.db.carrier.raw('select fault as k, count(*) as n from requests group by fault order by 2 desc')).rows,
  );
  const shipments = countBy(
    (await world.db.carrier.raw('select status as k, count(*) as n from shipments group by status order by 2 desc'))
      .rows,
  );
  const resolved = countBy(
    (
      await world.db.warehouse.raw(
        `select case when state = 'cancelled' then 'rolledBack' else 'committed' end as k, count(*) as n
         from eventual.outbox where resolved_by in ('checkback', 'default') group by 1`,
      )
    ).rows,
  );
  const steps = orderFulfilment(topicsFor('')).steps.map((s) => s.name);
  const stuck: StuckOrder[] = (
    (
      await world.db.order.raw(
        `select o.id, o.status, s.status as saga_status, s.step, s.waiting, s.last_error
         from orders o left join eventual.sagas s on s.id = o.id::text
         where o.status = 'PENDING' order by o.created_at limit 20`,
      )
    ).rows as Array<{
      id: string;
      status: string;
      saga_status: string | null;
      step: number | null;
      waiting: string | null;
      last_error: string | null;
    }>
  ).map((r) => ({
    id: r.id,
    status: r.status,
    saga:
      r.saga_status === null
        ? 'no saga'
        : `${r.saga_status} at ${steps[r.step ?? -1] ?? r.step}` +
          (r.waiting ? `, waiting for a ${r.waiting}` : '') +
          (r.last_error ? ` (${r.last_error})` : ''),
  }));
  return {
    byStatus,
    cancelReasons,
    latency: {
      p50: Number(latency?.p50 ?? 0),
      p95: Number(latency?.p95 ?? 0),
      max: Number(latency?.max ?? 0),
      spanMs: latency?.first_at && latency.last_at ? latency.last_at.getTime() - latency.first_at.getTime() : 0,
    },
    carrier: { requests, shipments },
    checkBack: { committed: resolved.committed ?? 0, rolledBack: resolved.rolledBack ?? 0 },
    stuck,
  };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const list = (counts: Record<string, number>) =>
  Object.entries(counts)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ') || 'none';

export function formatSummary(s: Summary): string {
  const lines: string[] = [];
  const { orders, timing } = s;
  lines.push('');
  lines.push(
    `eventual demo: ${s.options.orders} orders, concurrency ${s.options.concurrency}, seed ${s.options.seed}` +
      (s.chaos ? `, chaos: ${s.chaos.total} SIGKILLs (${list(s.chaos.kills)})` : ''),
  );
  lines.push('');
  lines.push(
    `orders      ${orders.placed} placed in ${seconds(timing.placeMs)}; ` +
      (timing.settled ? `all settled ${seconds(timing.settleMs)} after the first was placed` : 'NOT all settled'),
  );
  for (const status of ['COMPLETED', 'CANCELLED', 'PENDING']) {
    const n = orders.byStatus[status] ?? 0;
    if (status === 'PENDING' && n === 0) continue;
    const why = status === 'CANCELLED' && n > 0 ? `   (${list(orders.cancelReasons)})` : '';
    lines.push(`  ${status.padEnd(10)} ${String(n).padStart(5)}${why}`);
  }
  if (orders.refusedByApi > 0) lines.push(`  refused by the API: ${orders.refusedByApi}`);
  lines.push(
    `throughput  ${s.timing.ordersPerSecond.toFixed(1)} orders/s end to end; order to final state p50 ${seconds(timing.latencyP50Ms)}, ` +
      `p95 ${seconds(timing.latencyP95Ms)}, max ${seconds(timing.latencyMaxMs)}`,
  );
  lines.push(
    `carrier     requests: ${list(s.carrier.requests)}; shipments: ${list(s.carrier.shipments)}; ` +
      `check-back resolved ${s.checkBack.committed} as booked, ${s.checkBack.rolledBack} as not booked`,
  );
  if (s.crashes.length > 0) lines.push(`crashes     ${s.crashes.join('; ')} (restarted)`);
  if (s.stuck.length > 0) {
    const pending = orders.byStatus.PENDING ?? s.stuck.length;
    lines.push(
      `stuck       ${pending} orders did not settle before the deadline` +
        (pending > s.stuck.length ? ` (the first ${s.stuck.length}):` : ':'),
    );
    for (const o of s.stuck) lines.push(`  ${o.id}  saga ${o.saga}`);
  }
  lines.push('');
  lines.push(timing.quiet ? 'invariants' : 'invariants (checked with messages still in flight)');
  for (const inv of s.invariants) lines.push(`  ${inv.ok ? 'ok  ' : 'FAIL'}  ${inv.name}: ${inv.detail}`);
  lines.push('');
  const failed = s.invariants.filter((i) => !i.ok).length;
  const problems = [
    ...(timing.settled ? [] : ['not every order settled before the deadline']),
    ...(failed > 0 ? [`${failed} of ${s.invariants.length} invariants broken`] : []),
    ...(orders.refusedByApi > 0 ? [`${orders.refusedByApi} orders refused by the API`] : []),
  ];
  lines.push(s.ok ? `result: all ${s.invariants.length} invariants hold` : `result: FAILED: ${problems.join('; ')}`);
  if (s.logDir) lines.push(`service logs kept in ${s.logDir}`);
  lines.push('');
  return lines.join('\n');
}
