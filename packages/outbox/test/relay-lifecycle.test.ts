import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { createKafkaPublisher, createRelay, InvalidOptionError, type Publisher } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('lifecycle');

describe('relay lifecycle', () => {
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
    outbox.on('relay:leases', (e) => owned.push(e.owned));
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
    await expect(relay.start()).rejects.toThrow(InvalidOptionError);
    expect(publishCalls).toBe(callsAtStop);
    expect((await outbox.stats()).pending).toBe(1);
  });
});
