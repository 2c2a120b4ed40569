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

describe('relay restarted with a stable instance id', () => {
  it('takes the shards its crashed previous life held back at once, under new fencing tokens', async () => {
    const shards = 8;
    const { url, knex, outbox } = await fixture.database(shards);
    const topic = randomTopic('restarted');
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const brokers = fixture.services.kafkaBrokers.join(',');
    // A TTL far longer than the test: only reclaiming can explain a quick restart.
    const ttl = '120000';
    const pod = `relay-pod-${randomTopic('id').slice(-8)}`;
    const first = startChild(relayProcess, [url, brokers, 'run', ttl, pod]);
    fixture.defer(() => first.kill());
    await first.waitFor('started');
    const leases = () =>
      knex('eventual.outbox_leases')
        .where('name', 'like', 'relay:shard:%')
        .select('name', 'owner', 'token')
        .orderBy('name');
    await expect.poll(async () => (await leases()).filter((l) => l.owner === pod).length).toBe(shards);
    const before = await leases();
    await first.kill();

    // Another instance finds every shard still leased to the dead one...
    const other = fixture.relay(outbox, { instanceId: 'someone-else', leaseTtlMs: 120_000 });
    await other.start();
    expect(other.ownedShards()).toEqual([]);
    await other.stop();

    const messages = await knex.transaction((trx) =>
      outbox.enqueue(
        trx,
        Array.from({ length: 40 }, (_, i) => ({ topic, key: `k${i}`, type: 'Tick', payload: { i } })),
      ),
    );
    // ...but the same instance id, restarted, relays at once.
    const second = startChild(relayProcess, [url, brokers, 'run', ttl, pod]);
    fixture.defer(() => second.kill());
    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 20_000 }).toBe(0);
    const after = await leases();
    expect(after.map((l) => l.owner)).toEqual(before.map(() => pod));
    expect(after.map((l) => Number(l.token))).toEqual(before.map((l) => Number(l.token) + 1));
    const published = second.messages.filter((m) => m.event === 'published').flatMap((m) => m.ids as string[]);
    expect(published.sort()).toEqual(messages.map((m) => m.id).sort());
  });
});
