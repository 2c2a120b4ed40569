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
