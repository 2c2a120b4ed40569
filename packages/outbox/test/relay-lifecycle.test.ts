import { LifecycleError } from '@eventual/core';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { createKafkaPublisher, createRelay, type Publisher } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('lifecycle');

describe('relay lifecycle', () => {
  it('wakes on NOTIFY, lane by lane, without polling', async () => {
    const { knex, outbox } = await fixture.database(8);
    const topic = randomTopic('wake');
    await createTopics(fixture.services.kafkaBrokers, [topic], 2);
    const kafka = createKafkaPublisher({ kafka: fixture.services.kafka('wake') });
    fixture.defer(() => kafka.close());
    // An hour between polls: only a NOTIFY can get these messages out within the test.
    const relay = createRelay(outbox, { publisher: kafka, pollIntervalMs: 3_600_000, leaseTtlMs: 60_000, lanes: 2 });
    fixture.defer(() => relay.stop());
    // Each lane claims once at start, finds nothing, and waits: count the empty claims.
    let emptyClaims = 0;
    knex.on('query-response', (response: { rows?: unknown[] }, query: { sql: string }) => {
      if (query.sql.includes('with waiting as materialized') && response.rows?.length === 0) emptyClaims += 1;
    });
    await relay.start();
    expect(relay.ownedShards()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    await expect.poll(() => emptyClaims).toBeGreaterThanOrEqual(2);

    // One message per transaction, over keys that land in shards of both lanes.
    const ids: string[] = [];
    for (let n = 0; n < 16; n++) {
      const [m] = await knex.transaction((trx) =>
        outbox.enqueue(trx, [{ topic, key: `k-${n}`, type: 'T', payload: { n } }]),
      );
      ids.push(m!.id);
    }
    const shards = await knex('eventual.outbox').whereIn('id', ids).distinct('shard').pluck('shard');
    expect(new Set(shards.map((s: number) => s % 2)).size).toBe(2);

    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 10_000 }).toBe(0);
    expect(await knex('eventual.outbox').whereIn('id', ids).where({ state: 'published' }).count({ n: '*' })).toEqual([
      { n: '16' },
    ]);
  });

  it('stop() finishes and marks the in-flight batch, gives its leases back, and publishes nothing afterwards', async () => {
    const { knex, outbox } = await fixture.database(4);
    const topic = randomTopic('lifecycle');
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const kafka = createKafkaPublisher({ kafka: fixture.services.kafka('lifecycle') });
    fixture.defer(() => kafka.close());
    let inFlight: () => void = () => {};
    const entered = new Promise<void>((resolve) => {
      inFlight = resolve;
    });
    let proceed: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      proceed = resolve;
    });
    let publishCalls = 0;
    const gated: Publisher = {
      async publish(records) {
        publishCalls += 1;
        inFlight();
        await gate;
        await kafka.publish(records);
      },
      close: async () => {},
    };
    const relay = createRelay(outbox, { publisher: gated, pollIntervalMs: 50, leaseTtlMs: 60_000 });
    const owned: number[][] = [];
    relay.on('relay:leases', (e) => owned.push(e.owned));
    await relay.start();
    expect(relay.state).toBe('running');
    expect(relay.ownedShards()).toEqual([0, 1, 2, 3]);
    const messages = await knex.transaction((trx) =>
      outbox.enqueue(trx, [{ topic, key: 'k', type: 'T', payload: { n: 1 } }]),
    );
    await entered;

    const stopping = relay.stop();
    expect(relay.state).toBe('stopping');
    proceed();
    await stopping;
    expect(relay.state).toBe('stopped');
    expect((await knex('eventual.outbox').where({ id: messages[0]?.id }).first()).state).toBe('published');
    const { rows } = await knex.raw(
      `select count(*)::int as n from eventual.outbox_leases where owner is not null and expires_at > now()`,
    );
    expect(rows[0].n).toBe(0); // shards and membership handed back, not left to expire
    expect(owned.at(-1)).toEqual([]);

    await knex.transaction((trx) => outbox.enqueue(trx, [{ topic, key: 'k', type: 'T', payload: { n: 2 } }]));
    const callsAtStop = publishCalls;
    await expect(relay.start()).rejects.toThrow(LifecycleError);
    expect(publishCalls).toBe(callsAtStop);
    expect((await outbox.stats()).pending).toBe(1);
  });

  it('leaves no lease behind however a stop() meets the lease keeper', async () => {
    const { knex, outbox } = await fixture.database(8);
    const held = async () =>
      (
        await knex.raw(
          `select count(*)::int as n from eventual.outbox_leases where owner is not null and expires_at > now()`,
        )
      ).rows[0].n as number;
    // Each keeper tick begins with the membership upsert: count them, and stop just as
    // the n-th tick has begun, so the stop meets a tick in flight.
    let ticksBegun = 0;
    knex.on('query', (query: { sql: string }) => {
      if (query.sql.includes('token = case when l.owner = excluded.owner')) ticksBegun += 1;
    });
    for (let round = 0; round < 8; round++) {
      const kafka = createKafkaPublisher({ kafka: fixture.services.kafka(`keeper-${round}`) });
      const relay = createRelay(outbox, { publisher: kafka, leaseTtlMs: 300, pollIntervalMs: 50 });
      await relay.start();
      const until = ticksBegun + 1 + (round % 3);
      await expect.poll(() => ticksBegun, { interval: 1 }).toBeGreaterThanOrEqual(until);
      await relay.stop();
      expect(relay.ownedShards()).toEqual([]);
      expect(await held()).toBe(0);
    }
  });
});
