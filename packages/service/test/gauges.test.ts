import { InvalidOptionError } from '@eventual/core';
import { createTopics, randomTopic, testServices } from '@eventual/devstack/testing';
import knexFactory from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { recordMetrics } from '../../outbox/test/telemetry-support.js';
import { createService, kafkaTransport, type ServiceOptions } from '../src/index.js';

const services = testServices();
const { points } = recordMetrics();
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

async function billing(topic: string, options: Partial<ServiceOptions> = {}) {
  const knex = knexFactory({ client: 'pg', connection: await services.createDatabase('gauges'), pool: { max: 12 } });
  cleanups.push(() => knex.destroy());
  const service = createService({
    name: `billing-${topic.slice(-6)}`,
    knex,
    transport: kafkaTransport(services.kafka('gauges'), {
      consumer: { sessionTimeout: 6_000, rebalanceTimeout: 10_000, heartbeatInterval: 300, maxWaitTimeInMs: 100 },
    }),
    consumers: [{ topics: [topic], handlers: { OrderPlaced: () => {} } }],
    ...options,
  });
  cleanups.push(() => service.stop());
  return { service, knex };
}

describe('the gauges createService registers', () => {
  it('reports the outbox and consumer gauges of a started service, and none of one started with gauges: false', async () => {
    const topic = randomTopic('gauges');
    const quiet = randomTopic('quiet');
    await createTopics(services.kafkaBrokers, [topic, quiet], 1);
    const { service, knex } = await billing(topic, { metrics: { gaugeIntervalMs: 0 } });
    const { service: silent, knex: silentKnex } = await billing(quiet, { metrics: { gauges: false } });
    await service.start();
    await silent.start();
    const consumer = service.consumers.get(service.name)!;
    for (const [s, k, t] of [
      [service, knex, topic],
      [silent, silentKnex, quiet],
    ] as const)
      await k.transaction((trx) => s.outbox.enqueue(trx, { topic: t, key: 'o-1', type: 'OrderPlaced', payload: {} }));
    await expect.poll(() => consumer.counters.processed, { timeout: 30_000 }).toBe(1);
    await expect.poll(() => silent.consumers.get(silent.name)!.counters.processed, { timeout: 30_000 }).toBe(1);

    const lag = await points('eventual.consumer.lag', { 'messaging.destination.name': topic });
    expect(lag.map((p) => [p.attributes['messaging.consumer.group.name'], p.value])).toEqual([[service.name, 0]]);
    expect(await points('eventual.consumer.lag', { 'messaging.destination.name': quiet })).toEqual([]);
    // A prepared message stays prepared (its check-back is 30 s away): the outbox gauges see it.
    for (const [s, t] of [
      [service, 'payments'],
      [silent, 'refunds'],
    ] as const) {
      s.outbox.registerChecker({ topic: t }, () => 'unknown');
      await s.outbox.prepare({ topic: t, key: 'p-1', type: 'PaymentCaptured', payload: {} });
    }
    const prepared = await points('eventual.outbox.prepared', { 'messaging.destination.name': 'payments' });
    expect(prepared.map((p) => p.value)).toEqual([1]);
    expect(await points('eventual.outbox.prepared', { 'messaging.destination.name': 'refunds' })).toEqual([]);
    expect((await service.outbox.stats()).prepared).toBe(1);
    // The relay's, from the one service that registers gauges.
    const shards = await points('eventual.relay.shards.owned');
    expect(shards.map((p) => p.value)).toEqual([service.relay.ownedShards().length]);
    expect((await points('eventual.relay.last_publish.time')).length).toBe(1);
  });

  it('refuses metrics options it does not know or cannot use, saying which', async () => {
    const topic = randomTopic('gauges');
    await expect(billing(topic, { metrics: { gaugeIntervalMs: -1 } })).rejects.toThrow(
      /metrics.gaugeIntervalMs must be an integer between 0 and 3600000, got -1/,
    );
    await expect(billing(topic, { metrics: { gauges: 'yes' as never } })).rejects.toThrow(InvalidOptionError);
    await expect(billing(topic, { metrics: { interval: 5 } as never })).rejects.toThrow(/interval/);
  });
});
