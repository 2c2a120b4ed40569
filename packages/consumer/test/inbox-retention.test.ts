import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { createScheduler } from '@eventual/outbox';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { consumerFixture, uniqueName } from './support.js';

const fixture = consumerFixture('retention');

const HOUR = 3_600_000;

/** Inbox rows as a consumer leaves them, aged by hand: (message id, state, hours since settled). */
async function seed(knex: Knex, consumer: string, rows: Array<[string, 'processed' | 'dead' | 'retrying', number]>) {
  await knex('eventual.inbox').insert(
    rows.map(([id, state, ageHours], i) => ({
      consumer,
      message_id: id,
      topic: 't',
      partition: 0,
      offset: i,
      state,
      attempts: 1,
      created_at: knex.raw(`now() - interval '${ageHours + 1} hours'`),
      processed_at: state === 'retrying' ? null : knex.raw(`now() - interval '${ageHours} hours'`),
    })),
  );
}

const remaining = (knex: Knex) =>
  knex('eventual.inbox').select('consumer', 'message_id').orderBy(['consumer', 'message_id']);

describe('inbox retention', () => {
  it("deletes only this consumer's settled rows older than the retention, never a retrying one", async () => {
    const { knex, outbox } = await fixture.service();
    const name = uniqueName('billing');
    const consumer = await fixture.consumer({
      outbox,
      name,
      topics: [randomTopic('unused')],
      retention: { keepMs: 24 * HOUR, schedule: false, batchSize: 1 },
    });
    await seed(knex, name, [
      ['old-processed', 'processed', 48],
      ['old-dead', 'dead', 30],
      ['recent', 'processed', 2],
      ['retrying', 'retrying', 72],
    ]);
    await seed(knex, 'another-consumer', [['theirs', 'processed', 48]]);
    const cleaned: number[] = [];
    consumer.on('inbox:cleaned', ({ deleted }) => cleaned.push(deleted));

    expect(await consumer.cleanup()).toBe(2); // two batches of one row each
    expect(cleaned).toEqual([2]);
    expect(await remaining(knex)).toEqual([
      { consumer: 'another-consumer', message_id: 'theirs' },
      { consumer: name, message_id: 'recent' },
      { consumer: name, message_id: 'retrying' },
    ]);
    expect(await consumer.cleanup()).toBe(0);
  });

  it("runs on its node-cron schedule through the run coordinator, as one of the scheduler's jobs", async () => {
    const { knex, outbox } = await fixture.service();
    const name = uniqueName('shipping');
    const topic = randomTopic('shipments');
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const consumer = await fixture.consumer({
      outbox,
      name,
      topics: [topic],
      retention: { keepMs: HOUR, schedule: '* * * * * *' },
    });
    consumer.handle('ShipmentSent', () => {}); // start() refuses a consumer without handlers
    await seed(knex, name, [['old', 'processed', 5]]);
    const scheduler = createScheduler(outbox, {
      schedules: { checkback: false, cleanup: false, sweep: false, 'lease-recovery': false },
      jobs: consumer.jobs,
    });
    fixture.defer(() => scheduler.stop());
    await consumer.start();
    await scheduler.start();

    await expect.poll(() => remaining(knex), { timeout: 10_000 }).toEqual([]);
    const [lease] = await knex('eventual.outbox_leases').where({ name: `cron:eventual.inbox:cleanup:${name}` });
    expect(lease).toBeDefined();
    await scheduler.stop();
    await consumer.stop();
    expect(consumer.state).toBe('stopped');
    expect(scheduler.state).toBe('stopped');
  });
});
