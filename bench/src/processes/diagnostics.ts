import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Consumer, ConsumerConfig, Kafka, Producer, ProducerConfig } from 'kafkajs';
import type { Knex } from 'knex';

/**
 * What a process spent its time on between `start()` and `snapshot()`: CPU, event
 * loop delay, PostgreSQL round trips and Kafka requests. This is the profile that
 * explains a figure (e.g. "4 round trips and 1 Produce request per batch").
 */
export interface Diagnostics {
  wallMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  pg: {
    queries: number;
    totalMs: number;
    byStatement: Record<string, { count: number; totalMs: number }>;
    /**
     * BEGIN, COMMIT, ROLLBACK issued by knex transactions: round trips too, but knex
     * reports no response for them, so they are counted here, untimed, not in `queries`.
     */
    transactionControl: Record<string, number>;
  };
  kafka: { requests: Record<string, { count: number; totalMs: number; bytes: number }> };
  batches: number;
  published: number;
  /** Sum of `relay:published` durationMs (publish + mark) over all batches. */
  publishAndMarkMs: number;
  /** Records a consumer settled (or the counting baseline counted). */
  handled: number;
}

export class Recorder {
  #startedAt = 0;
  #cpu = process.cpuUsage();
  readonly #loop = monitorEventLoopDelay({ resolution: 5 });
  readonly #pg = new Map<string, { count: number; totalMs: number }>();
  readonly #pgStarted = new Map<string, { at: number; label: string }>();
  readonly #pgControl = new Map<string, number>();
  readonly #kafka = new Map<string, { count: number; totalMs: number; bytes: number }>();
  batches = 0;
  published = 0;
  publishAndMarkMs = 0;
  handled = 0;

  start(): void {
    this.#startedAt = performance.now();
    this.#cpu = process.cpuUsage();
    this.#pg.clear();
    this.#pgControl.clear();
    this.#kafka.clear();
    this.batches = 0;
    this.published = 0;
    this.publishAndMarkMs = 0;
    this.handled = 0;
    this.#loop.reset();
    this.#loop.enable();
  }

  /** Counts and times every statement this knex instance runs, by its first words. */
  watchKnex(knex: Knex): void {
    knex.on('query', (q: { __knexQueryUid?: string; sql: string }) => {
      if (q.__knexQueryUid === undefined) {
        // A transaction's own BEGIN / COMMIT / ROLLBACK: no query-response will follow.
        const label =
          q.sql
            .trim()
            .split(/[\s;]+/)[0]
            ?.toLowerCase() ?? 'unknown';
        this.#pgControl.set(label, (this.#pgControl.get(label) ?? 0) + 1);
        return;
      }
      this.#pgStarted.set(q.__knexQueryUid, { at: performance.now(), label: statementLabel(q.sql) });
    });
    const done = (_: unknown, q: { __knexQueryUid: string }) => {
      const started = this.#pgStarted.get(q.__knexQueryUid);
      if (!started) return;
      this.#pgStarted.delete(q.__knexQueryUid);
      const entry = this.#pg.get(started.label) ?? { count: 0, totalMs: 0 };
      entry.count += 1;
      entry.totalMs += performance.now() - started.at;
      this.#pg.set(started.label, entry);
    };
    knex.on('query-response', done);
    knex.on('query-error', done);
  }

  /** A Kafka client whose producers and consumers report every request they send (by API name). */
  watchKafka(kafka: Kafka): Kafka {
    const count = ({ payload }: { payload: { apiName: string; duration: number; size: number } }) => {
      const entry = this.#kafka.get(payload.apiName) ?? { count: 0, totalMs: 0, bytes: 0 };
      entry.count += 1;
      entry.totalMs += payload.duration;
      entry.bytes += payload.size;
      this.#kafka.set(payload.apiName, entry);
    };
    const producer = (config?: ProducerConfig): Producer => {
      const p = kafka.producer(config);
      p.on(p.events.REQUEST, count);
      return p;
    };
    const consumer = (config: ConsumerConfig): Consumer => {
      const c = kafka.consumer(config);
      c.on(c.events.REQUEST, count);
      return c;
    };
    return Object.assign(Object.create(kafka) as Kafka, { producer, consumer });
  }

  snapshot(): Diagnostics {
    const cpu = process.cpuUsage(this.#cpu);
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    const pgEntries = [...this.#pg.entries()];
    const r = (v: number) => Math.round(v * 100) / 100;
    return {
      wallMs: r(performance.now() - this.#startedAt),
      cpuUserMs: r(cpu.user / 1000),
      cpuSystemMs: r(cpu.system / 1000),
      eventLoopDelayMs: {
        p50: ms(this.#loop.percentile(50)),
        p99: ms(this.#loop.percentile(99)),
        max: ms(this.#loop.max),
      },
      pg: {
        queries: pgEntries.reduce((sum, [, e]) => sum + e.count, 0),
        totalMs: r(pgEntries.reduce((sum, [, e]) => sum + e.totalMs, 0)),
        byStatement: Object.fromEntries(pgEntries.map(([k, e]) => [k, { count: e.count, totalMs: r(e.totalMs) }])),
        transactionControl: Object.fromEntries(this.#pgControl),
      },
      kafka: {
        requests: Object.fromEntries(
          [...this.#kafka.entries()].map(([k, e]) => [k, { count: e.count, totalMs: r(e.totalMs), bytes: e.bytes }]),
        ),
      },
      batches: this.batches,
      published: this.published,
      publishAndMarkMs: r(this.publishAndMarkMs),
      handled: this.handled,
    };
  }
}

/** The relay's and the inbox's statements by role (matched on their text), anything else by its first word. */
const ROLES: Array<[RegExp, string]> = [
  [/m\.state = 'pending' and m\.shard = any/, 'claim'],
  [/set state = 'published'/, 'mark published'],
  [/delete from \S+ m\s+where m\.id = any/, 'mark published (delete)'],
  [/set attempts = m\.attempts \+ 1/, 'mark failed'],
  [/_leases/, 'leases'],
  [/^\s*(un)?listen/, 'listen'],
  [/on conflict \(consumer, message_id\) do update\s+set state = 'processed'/, 'inbox claim'],
];

function statementLabel(sql: string): string {
  for (const [pattern, role] of ROLES) if (pattern.test(sql)) return role;
  return sql.trim().split(/\s+/)[0]?.toLowerCase() ?? 'unknown';
}
