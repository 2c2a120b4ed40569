import { createTopics, randomTopic } from '@eventual/devstack/testing';
import {
  createKafkaPublisher,
  createOutbox,
  createScheduler,
  InvalidOptionError,
  observeOutboxGauges,
  observeRelayGauges,
  observeSchedulerGauges,
  PublishError,
  type Publisher,
} from '@eventual/outbox';
import type { Knex } from 'knex';
import { afterEach, describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';
import { recordMetrics } from './telemetry-support.js';

const fixture = outboxFixture('outbox_gauges');
const { points } = recordMetrics();

const unregister: Array<() => void> = [];
afterEach(() => {
  for (const stop of unregister.splice(0)) stop();
});

/** Each topic's value of gauge `name`, as the reader collects it now. */
async function gauge(name: string): Promise<Record<string, number>> {
  const found = await points(name);
  return Object.fromEntries(
    found.map((p) => [p.attributes['messaging.destination.name'] as string, p.value as number]),
  );
}

/** What the gauges should say, counted from the rows themselves. */
async function rowsByTopic(knex: Knex, state: string): Promise<Record<string, number>> {
  const rows = await knex('eventual.outbox')
    .where({ state })
    .groupBy('topic')
    .select('topic')
    .count<Array<{ topic: string; count: string }>>('* as count');
  return Object.fromEntries(rows.map((r) => [r.topic, Number(r.count)]));
}

describe('outbox gauges', () => {
  it('reports pending per topic as the rows say while no relay runs, then dead on its own gauge after a dead letter', async () => {
    const { knex, outbox } = await fixture.database();
    const refused = randomTopic('refused');
    const accepted = randomTopic('accepted');
    await createTopics(fixture.services.kafkaBrokers, [accepted], 1);
    const message = (topic: string, n: number) => ({ topic, key: `k-${n}`, type: 'OrderPlaced', payload: { n } });
    await knex.transaction((trx) =>
      outbox.enqueue(trx, [message(refused, 1), message(refused, 2), message(refused, 3), message(accepted, 4)]),
    );
    outbox.registerChecker({ topic: accepted }, () => 'unknown');
    await outbox.prepare(message(accepted, 5));
    unregister.push(observeOutboxGauges(outbox, { intervalMs: 0 }));

    expect(await gauge('eventual.outbox.pending')).toEqual({ [refused]: 3, [accepted]: 1 });
    expect(await gauge('eventual.outbox.pending')).toEqual(await rowsByTopic(knex, 'pending'));
    expect(await gauge('eventual.outbox.prepared')).toEqual({ [refused]: 0, [accepted]: 1 });
    expect(await gauge('eventual.outbox.checkback.due')).toEqual({ [refused]: 0, [accepted]: 1 }); // checkAfterMs: 0
    expect(await gauge('eventual.outbox.dead')).toEqual({ [refused]: 0, [accepted]: 0 });
    const [oldest] = await points('eventual.outbox.oldest_pending.age', { 'messaging.destination.name': refused });
    const { rows } = await knex.raw(
      `select extract(epoch from now() - min(created_at))::float8 as age from eventual.outbox where state = 'pending' and topic = ?`,
      [refused],
    );
    expect(oldest!.value).toBeGreaterThan(0);
    expect(oldest!.value).toBeLessThanOrEqual(rows[0].age); // read before the check, of the same rows

    // A topic the broker can never take: the relay marks its messages dead at once.
    const kafka = createKafkaPublisher({ kafka: fixture.services.kafka('gauges') });
    const publisher: Publisher = {
      async publish(records) {
        if (records.some((r) => r.topic === refused)) throw new PublishError('permanent', 'record too large, say');
        await kafka.publish(records);
      },
      close: () => kafka.close(),
    };
    const relay = fixture.relay(outbox, { publisher });
    await relay.start();
    await expect.poll(() => relay.counters.dead, { timeout: 20_000 }).toBe(3);
    await expect.poll(() => relay.counters.published, { timeout: 20_000 }).toBe(1);
    await relay.stop();

    expect(await gauge('eventual.outbox.dead')).toEqual({ [refused]: 3, [accepted]: 0 });
    expect(await rowsByTopic(knex, 'dead')).toEqual({ [refused]: 3 });
    // The drained topics report 0, not a stale last value.
    expect(await gauge('eventual.outbox.pending')).toEqual({ [refused]: 0, [accepted]: 0 });
    expect(await gauge('eventual.outbox.oldest_pending.age')).toEqual({ [refused]: 0, [accepted]: 0 });

    await outbox.requeue((await outbox.listDead()).map((d) => d.id));
    expect(await gauge('eventual.outbox.dead')).toEqual({ [refused]: 0, [accepted]: 0 });
    expect(await gauge('eventual.outbox.pending')).toEqual({ [refused]: 3, [accepted]: 0 });
  });

  it('reads the table once per interval: collections within it report the same read', async () => {
    const { knex, outbox } = await fixture.database();
    const topic = randomTopic('cached');
    const enqueue = (n: number) =>
      knex.transaction((trx) => outbox.enqueue(trx, { topic, key: `k-${n}`, type: 'OrderPlaced', payload: {} }));
    await enqueue(1);
    const stopCached = observeOutboxGauges(outbox, { intervalMs: 3_600_000 });
    // (The SDK keeps the last values of the first test's topics: look at this one's.)
    expect((await gauge('eventual.outbox.pending'))[topic]).toBe(1);
    await enqueue(2);
    expect((await gauge('eventual.outbox.pending'))[topic]).toBe(1);
    stopCached();

    unregister.push(observeOutboxGauges(outbox, { intervalMs: 0 }));
    expect((await gauge('eventual.outbox.pending'))[topic]).toBe(2);
  });

  it('logs a failed read once per interval and reports nothing from it', async () => {
    const { url, knex } = await fixture.database();
    const warnings: string[] = [];
    const outbox = createOutbox({
      knex: fixture.connect(url),
      logger: (entry) => {
        if (entry.level === 'warn') warnings.push(`${entry.message}: ${entry.error?.message}`);
      },
    });
    const topic = randomTopic('gone');
    await knex.transaction((trx) => outbox.enqueue(trx, { topic, key: 'k', type: 'OrderPlaced', payload: {} }));
    await knex.raw('drop table eventual.outbox cascade'); // the read fails from now on
    unregister.push(observeOutboxGauges(outbox, { intervalMs: 3_600_000 }));
    expect(await points('eventual.outbox.pending', { 'messaging.destination.name': topic })).toEqual([]);
    expect(await points('eventual.outbox.pending', { 'messaging.destination.name': topic })).toEqual([]);
    expect(warnings).toHaveLength(1); // the second collection reused the failed read: one query per interval
    expect(warnings[0]).toMatch(/^outbox gauges: reading "eventual"\."outbox" failed, nothing reported this time: /);
  });

  it("reports the relay's shards and last publish time, and each scheduled job's last success, from memory", async () => {
    const { knex, outbox } = await fixture.database(4);
    const topic = randomTopic('relayed');
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const relay = fixture.relay(outbox);
    const scheduler = createScheduler(outbox, {
      schedules: { sweep: '* * * * * *', checkback: false, cleanup: false, 'lease-recovery': false },
    });
    fixture.defer(() => scheduler.stop());
    unregister.push(observeRelayGauges(relay), observeSchedulerGauges(scheduler));
    expect(await points('eventual.relay.last_publish.time')).toEqual([]); // nothing published yet: nothing made up
    await relay.start();
    await scheduler.start();

    const before = Date.now() / 1000;
    await knex.transaction((trx) => outbox.enqueue(trx, { topic, key: 'k', type: 'OrderPlaced', payload: {} }));
    await expect.poll(() => relay.counters.published, { timeout: 20_000 }).toBe(1);
    const sweeps = new Promise<void>((resolve) =>
      scheduler.on('scheduler:ran', ({ job }) => job === 'sweep' && resolve()),
    );
    await sweeps;
    const after = Date.now() / 1000;

    const [owned] = await points('eventual.relay.shards.owned');
    expect(owned!.value).toBe(relay.ownedShards().length);
    expect(owned!.value).toBe(4); // the only relay holds every shard
    const [published] = await points('eventual.relay.last_publish.time');
    expect(published!.value).toBeGreaterThanOrEqual(before);
    expect(published!.value).toBeLessThanOrEqual(after);
    const jobs = await points('eventual.scheduler.last_success.time');
    expect(jobs.map((p) => p.attributes['eventual.job.name'])).toEqual(['sweep']);
    expect(jobs[0]!.value).toBeGreaterThanOrEqual(before);
  });

  it('refuses an interval that is not a whole number of ms, and what is not an outbox', async () => {
    const { outbox } = await fixture.database();
    expect(() => observeOutboxGauges(outbox, { intervalMs: -5 })).toThrow(
      /observeOutboxGauges intervalMs must be an integer between 0 and 3600000, got -5/,
    );
    expect(() => observeOutboxGauges(outbox, { intervalMs: 1.5 })).toThrow(InvalidOptionError);
    expect(() => observeOutboxGauges({} as never)).toThrow(/expected an outbox created with createOutbox/);
    expect(() => observeOutboxGauges({} as never)).toThrow(InvalidOptionError);
    expect(() => observeRelayGauges({} as never)).toThrow(/needs a relay created with createRelay/);
    expect(() => observeSchedulerGauges(null as never)).toThrow(/needs a scheduler created with createScheduler/);
  });
});
