import type { Diagnostics } from './processes/diagnostics.js';
import { round } from './stats.js';

/** Per batch and per message figures from a process's diagnostics: what the time went to. */
export function profile(d: Diagnostics) {
  const perBatch = (n: number) => (d.batches > 0 ? round(n / d.batches, 2) : null);
  return {
    batches: d.batches,
    published: d.published,
    pgRoundTripsPerBatch: perBatch(d.pg.queries),
    pgMsPerBatch: perBatch(d.pg.totalMs),
    kafkaRequestsPerBatch: Object.fromEntries(
      Object.entries(d.kafka.requests).map(([api, e]) => [api, perBatch(e.count)]),
    ),
    kafkaMsPerBatch: Object.fromEntries(Object.entries(d.kafka.requests).map(([api, e]) => [api, perBatch(e.totalMs)])),
    publishAndMarkMsPerBatch: perBatch(d.publishAndMarkMs),
    cpuMsPer1000Messages: d.published > 0 ? round(((d.cpuUserMs + d.cpuSystemMs) * 1000) / d.published, 1) : null,
    cpuUtilisation: round((d.cpuUserMs + d.cpuSystemMs) / d.wallMs, 2),
    eventLoopDelayMs: d.eventLoopDelayMs,
    raw: d,
  };
}

/**
 * Per record figures of a consuming process: PostgreSQL round trips by statement
 * (BEGIN and COMMIT included: `begin` counts transactions), Kafka requests by API, CPU
 * and event loop delay.
 */
export function consumerProfile(d: Diagnostics) {
  const perRecord = (n: number) => (d.handled > 0 ? round(n / d.handled, 3) : null);
  const per1000 = (n: number) => (d.handled > 0 ? round((n * 1000) / d.handled, 2) : null);
  const control = Object.entries(d.pg.transactionControl);
  return {
    records: d.handled,
    pgRoundTripsPerRecord: perRecord(d.pg.queries + control.reduce((sum, [, n]) => sum + n, 0)),
    /** Timed statements only: knex reports no response for BEGIN and COMMIT. */
    pgMsPerRecord: perRecord(d.pg.totalMs),
    pgStatementsPerRecord: Object.fromEntries([
      ...control.map(([statement, n]) => [statement, perRecord(n)]),
      ...Object.entries(d.pg.byStatement).map(([statement, e]) => [statement, perRecord(e.count)]),
    ]),
    kafkaRequestsPer1000Records: Object.fromEntries(
      Object.entries(d.kafka.requests).map(([api, e]) => [api, per1000(e.count)]),
    ),
    kafkaMsPer1000Records: Object.fromEntries(
      Object.entries(d.kafka.requests).map(([api, e]) => [api, per1000(e.totalMs)]),
    ),
    cpuMsPer1000Records: per1000(d.cpuUserMs + d.cpuSystemMs),
    cpuUtilisation: round((d.cpuUserMs + d.cpuSystemMs) / d.wallMs, 2),
    eventLoopDelayMs: d.eventLoopDelayMs,
    raw: d,
  };
}
