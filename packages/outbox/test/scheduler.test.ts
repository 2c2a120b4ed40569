import { waitUntil } from '@eventual/devstack';
import { createOutbox, createScheduler } from '@eventual/outbox';
import cron from 'node-cron';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('scheduler');

describe('scheduled jobs through the PostgreSQL run coordinator', () => {
  it('runs each scheduled slot once across the cluster when two instances schedule the same job, and stops cleanly', async () => {
    const { url } = await fixture.database(1);
    // Two "processes": separate pools, separate outbox objects, one database.
    const instances = ['node-a', 'node-b'].map((instanceId) => {
      const outbox = createOutbox({ knex: fixture.connect(url) });
      const scheduler = createScheduler(outbox, {
        instanceId,
        schedules: { sweep: '* * * * * *', checkback: false, cleanup: false, 'lease-recovery': false },
      });
      return { outbox, scheduler };
    });
    const runs: Array<{ instanceId: string; slot: string }> = [];
    for (const { scheduler } of instances)
      scheduler.on('scheduler:ran', ({ instanceId, slot }) => runs.push({ instanceId, slot: slot.toISOString() }));
    for (const { scheduler } of instances) await scheduler.start();
    fixture.defer(async () => {
      for (const { scheduler } of instances) await scheduler.stop();
    });

    await waitUntil('five scheduled runs', async () => (runs.length >= 5 ? true : undefined), { timeoutMs: 20_000 });
    for (const { scheduler } of instances) await scheduler.stop();
    const slots = runs.map((r) => r.slot);
    expect(new Set(slots).size).toBe(slots.length); // no slot ran twice
    // Stopped means stopped: no task of ours is left in node-cron's registry to fire again.
    const ours = [...cron.getTasks().values()].filter((task) => task.name?.startsWith('eventual.outbox:'));
    expect(ours).toEqual([]);
  });

  it('lets the next instance run a job whose previous holder crashed mid-run, once its lease expired', async () => {
    const { url, knex } = await fixture.database(1);
    const outbox = createOutbox({ knex: fixture.connect(url) });
    const crashed = createScheduler(outbox, { instanceId: 'crashed' }).coordinator;
    const survivor = createScheduler(outbox, { instanceId: 'survivor' }).coordinator;
    const slot = (s: number) => `outbox-job:2026-11-21T12:00:0${s}.000Z`;

    expect(await crashed.shouldRun(slot(1), 60_000)).toBe(true);
    // The holder dies without onComplete(): its lease still stands, so no overlap...
    expect(await survivor.shouldRun(slot(2), 60_000)).toBe(false);
    // ...and no slot is ever run twice.
    expect(await survivor.shouldRun(slot(1), 60_000)).toBe(false);
    await knex.raw(
      `update eventual.outbox_leases set expires_at = now() - interval '1 second' where name = 'cron:outbox-job'`,
    );
    expect(await survivor.shouldRun(slot(3), 60_000)).toBe(true);
    expect(survivor.tokenFor('outbox-job')).toBe(crashed.tokenFor('outbox-job')! + 1);
    await survivor.onComplete?.(slot(3));
    expect(await crashed.shouldRun(slot(4), 60_000)).toBe(true);
  });

  it('cleans up published rows older than the retention in bounded batches', async () => {
    const { knex, outbox } = await fixture.database(1);
    await knex.transaction((trx) =>
      outbox.enqueue(
        trx,
        Array.from({ length: 25 }, (_, i) => ({ topic: 't', key: `k${i}`, type: 'T', payload: { i } })),
      ),
    );
    // 20 were published two days ago, 5 are still pending.
    await knex.raw(
      `update eventual.outbox set state = 'published', published_at = now() - interval '2 days' where id in (select id from eventual.outbox order by id limit 20)`,
    );
    const scheduler = createScheduler(outbox, { retentionMs: 86_400_000, cleanupBatchSize: 6, cleanupMaxBatches: 2 });
    expect(await scheduler.runNow('cleanup')).toBe(12); // bounded: 2 batches of 6
    expect(await scheduler.runNow('cleanup')).toBe(8);
    expect(await scheduler.runNow('cleanup')).toBe(0);
    expect(await knex('eventual.outbox').count({ n: '*' })).toEqual([{ n: '5' }]);
    expect(outbox.counters.cleaned).toBe(20);
  });
});
