import { waitUntil } from '@eventual/devstack';
import { createTopics, randomTopic, readTopics } from '@eventual/devstack/testing';
import { createKafkaPublisher, HEADER, PublishError, type Publisher } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('dead');

describe('messages that cannot be published', () => {
  it('sends a permanently unpublishable message dead at once without stalling other keys, and requeue publishes it', async () => {
    const { knex, outbox } = await fixture.database(1);
    const topic = randomTopic('small');
    // The broker refuses records over 2 KB on this topic: a permanent error.
    await createTopics(fixture.services.kafkaBrokers, [topic], 1, [{ name: 'max.message.bytes', value: '2048' }]);
    const reader = await readTopics(fixture.services.kafkaBrokers, [topic]);
    fixture.defer(() => reader.stop());

    const [before, huge, after, sameKeyAfter] = await knex.transaction((trx) =>
      outbox.enqueue(trx, [
        { topic, key: 'a', type: 'Small', payload: { n: 1 } },
        { topic, key: 'b', type: 'Huge', payload: { blob: 'x'.repeat(10_000) } },
        { topic, key: 'c', type: 'Small', payload: { n: 2 } },
        { topic, key: 'b', type: 'Small', payload: { n: 3 } },
      ]),
    );
    const relay = fixture.relay(outbox, { maxAttempts: 5 });
    const deadEvents: string[] = [];
    relay.on('relay:dead', ({ messageId }) => deadEvents.push(messageId));
    await relay.start();

    await reader.waitForCount(3);
    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 15_000 }).toBe(0);
    expect(reader.records.map((r) => r.headers[HEADER.id])).toEqual([before?.id, after?.id, sameKeyAfter?.id]);
    const deadRow = await knex('eventual.outbox').where({ id: huge?.id }).first();
    expect(deadRow).toMatchObject({ state: 'dead', attempts: 1 });
    expect(deadRow.last_error).toMatch(/permanent/);
    expect(deadEvents).toEqual([huge?.id]);
    const listed = await outbox.listDead();
    expect(listed.map((m) => [m.id, m.type, m.attempts])).toEqual([[huge?.id, 'Huge', 1]]);

    // An operator raises the topic limit, then requeues the message.
    const admin = fixture.services.kafka('admin').admin();
    await admin.connect();
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: 2, name: topic, configEntries: [{ name: 'max.message.bytes', value: '1048588' }] }],
    });
    await admin.disconnect();
    expect(await outbox.requeue([huge!.id])).toEqual([huge?.id]);
    expect(await outbox.requeue([huge!.id])).toEqual([]); // no longer dead: nothing to do

    await reader.waitForCount(4);
    expect(reader.records[3]?.headers[HEADER.id]).toBe(huge?.id);
    await expect
      .poll(async () => (await knex('eventual.outbox').where({ id: huge?.id }).first()).state, { timeout: 10_000 })
      .toBe('published');
  });

  it('holds later messages of a key behind one that is backing off, lets other keys pass, and goes dead after maxAttempts', async () => {
    const { knex, outbox } = await fixture.database(1);
    const topic = randomTopic('flaky');
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const reader = await readTopics(fixture.services.kafkaBrokers, [topic]);
    fixture.defer(() => reader.stop());
    const kafka = createKafkaPublisher({ kafka: fixture.services.kafka('flaky') });
    fixture.defer(() => kafka.close());
    // Rejects any batch holding a record of type 'Flaky' until it was refused `failures` times.
    const refusals = new Map<string, number>();
    const flaky = (failures: Record<string, number>): Publisher => ({
      async publish(records) {
        for (const r of records) {
          const type = r.headers[HEADER.type]!;
          const seen = refusals.get(r.id) ?? 0;
          if (seen < (failures[type] ?? 0)) {
            refusals.set(r.id, seen + 1);
            throw new PublishError('retriable', `simulated broker refusal ${seen + 1} of ${r.id}`);
          }
        }
        await kafka.publish(records);
      },
      close: async () => {},
    });
    const [slow1, slow2, other, doomed] = await knex.transaction((trx) =>
      outbox.enqueue(trx, [
        { topic, key: 'slow', type: 'Flaky', payload: { n: 1 } },
        { topic, key: 'slow', type: 'Fine', payload: { n: 2 } },
        { topic, key: 'other', type: 'Fine', payload: { n: 3 } },
        { topic, key: 'doomed', type: 'Doomed', payload: { n: 4 } },
      ]),
    );
    const relay = fixture.relay(outbox, {
      publisher: flaky({ Flaky: 2, Doomed: 99 }),
      batchSize: 1,
      maxAttempts: 3,
      backoff: { initialMs: 200, maxMs: 400, jitter: 0 },
    });
    await relay.start();

    await reader.waitForCount(3);
    await expect
      .poll(async () => (await knex('eventual.outbox').where({ id: doomed?.id }).first()).state, { timeout: 15_000 })
      .toBe('dead');
    const order = reader.records.map((r) => r.headers[HEADER.id]);
    // 'other' did not wait for 'slow'; slow2 never overtook slow1.
    expect(order.indexOf(other!.id)).toBeLessThan(order.indexOf(slow1!.id));
    expect(order.indexOf(slow1!.id)).toBeLessThan(order.indexOf(slow2!.id));
    expect(await knex('eventual.outbox').where({ id: slow1?.id }).first()).toMatchObject({
      state: 'published',
      attempts: 3,
    });
    expect(await knex('eventual.outbox').where({ id: doomed?.id }).first()).toMatchObject({
      state: 'dead',
      attempts: 3,
    });
    expect(refusals.get(doomed!.id)).toBe(3);
    await waitUntil('the relay to idle', async () => ((await outbox.stats()).pending === 0 ? true : undefined), {
      timeoutMs: 5_000,
    });
  });
});
