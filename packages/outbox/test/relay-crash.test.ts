import { createTopics, randomTopic, readTopics, startChild } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { outboxFixture, relayProcess } from './support.js';

const fixture = outboxFixture('crash');

describe('relay crash between the Kafka ack and the database mark', () => {
  it('republishes the acknowledged message with the same id after the crash, and then marks it', async () => {
    const { url, knex, outbox } = await fixture.database();
    const topic = randomTopic('crash');
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const reader = await readTopics(fixture.services.kafkaBrokers, [topic]);
    fixture.defer(() => reader.stop());
    const [message] = await knex.transaction((trx) =>
      outbox.enqueue(trx, [{ topic, key: 'k', type: 'Crashy', payload: { n: 1 } }]),
    );

    const crashing = startChild(relayProcess, [url, fixture.services.kafkaBrokers.join(','), 'hang-after-ack', '1500']);
    fixture.defer(() => crashing.kill());
    const acked = await crashing.waitFor('acked');
    expect(acked.ids).toEqual([message?.id]);
    await crashing.kill();

    // Kafka has the record, the database still says pending: the crash window.
    await reader.waitForCount(1);
    expect((await knex('eventual.outbox').where({ id: message?.id }).first()).state).toBe('pending');

    const relay = fixture.relay(outbox, { leaseTtlMs: 1_500 });
    await relay.start();
    const records = await reader.waitForCount(2);
    await expect
      .poll(async () => (await knex('eventual.outbox').where({ id: message?.id }).first()).state, { timeout: 15_000 })
      .toBe('published');
    expect(records.map((r) => r.headers[HEADER.id])).toEqual([message?.id, message?.id]);
    expect(records.map((r) => r.value)).toEqual(['{"n":1}', '{"n":1}']);
  });
});
