import { InvalidOptionError } from '@eventual/core';
import { createTopics, randomTopic, readTopics, testServices } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import knexFactory, { type Knex } from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { createService, kafkaTransport } from '../src/index.js';

const services = testServices();
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

async function database(pool = 20): Promise<Knex> {
  const knex = knexFactory({
    client: 'pg',
    connection: await services.createDatabase('service'),
    pool: { min: 0, max: pool },
  });
  cleanups.push(() => knex.destroy());
  return knex;
}

/** Fast group joins, so a test does not wait out kafkajs' default session timeouts. */
const transport = () =>
  kafkaTransport(services.kafka('service'), {
    consumer: { sessionTimeout: 6_000, rebalanceTimeout: 10_000, heartbeatInterval: 300, maxWaitTimeInMs: 100 },
  });

describe('createService', () => {
  it('assembles a producing and a consuming service in a few lines, applies each message once, and stops in order', async () => {
    const topic = randomTopic('orders');
    const receipts = randomTopic('receipts');
    await createTopics(services.kafkaBrokers, [topic, receipts], 2);
    const reader = await readTopics(services.kafkaBrokers, [receipts]);
    cleanups.push(() => reader.stop());

    const ordersDb = await database();
    const orders = createService({ name: 'orders', knex: ordersDb, transport: transport() });
    const billingDb = await database();
    const billing = createService({
      name: `billing-${topic.slice(-6)}`,
      knex: billingDb,
      transport: transport(),
      consumers: [
        {
          topics: [topic],
          handlers: {
            OrderPlaced: async ({ trx, message, outbox }) => {
              await trx('charges').insert({ message_id: message.id });
              await outbox.enqueue({ topic: receipts, key: message.key, type: 'Charged', payload: message.payload });
            },
          },
        },
      ],
    });
    cleanups.push(
      () => orders.stop(),
      () => billing.stop(),
    );
    await billingDb.schema.createTable('charges', (t) => t.text('message_id').notNullable());
    await orders.start();
    await billing.start();
    expect(orders.parts()).toEqual([
      { part: 'relay', state: 'running' },
      { part: 'scheduler', state: 'running' },
    ]);
    expect(billing.parts().map((p) => p.part)).toEqual(['relay', 'scheduler', `consumer ${billing.name}`]);

    const placed = await ordersDb.transaction((trx) =>
      orders.outbox.enqueue(
        trx,
        Array.from({ length: 20 }, (_, n) => ({ topic, key: `order-${n % 5}`, type: 'OrderPlaced', payload: { n } })),
      ),
    );
    await reader.waitForCount(20);
    const charges = await billingDb('charges').select('message_id');
    expect(charges.map((c) => c.message_id).sort()).toEqual(placed.map((m) => m.id).sort());
    // What the handler emitted went out through the billing service's own relay, caused by the order.
    expect(reader.records.map((r) => r.headers[HEADER.causationId]).sort()).toEqual(placed.map((m) => m.id).sort());

    await billing.stop();
    expect(billing.parts().map((p) => p.state)).toEqual(['stopped', 'stopped', 'stopped']);
    const { rows } = await billingDb.raw(
      `select count(*)::int as held from eventual.outbox_leases where owner is not null and expires_at > now()`,
    );
    expect(rows[0].held).toBe(0); // shards, membership and job leases handed back
    expect(billing.state).toBe('stopped');
  });

  it('refuses incomplete wiring when it is created, saying what to add', async () => {
    const knex = await database();
    const kafka = services.kafka('wiring');
    expect(() =>
      createService({ name: 'mailer', knex, kafka, consumers: [{ topics: ['signups'], handlers: {} }] }),
    ).toThrow(/consumer 'mailer' has no handlers/);
    expect(() => createService({ name: 'mailer', knex })).toThrow(/exactly one of kafka .* or transport/);
    expect(() => createService({ name: 'mailer', knex, kafka, transport: kafkaTransport(kafka) })).toThrow(
      InvalidOptionError,
    );
    expect(() =>
      createService({
        name: 'mailer',
        knex,
        kafka,
        consumers: [
          { topics: ['a'], handlers: { A: () => {} } },
          { topics: ['b'], handlers: { B: () => {} } },
        ],
      }),
    ).toThrow(/two consumers are named 'mailer'/);
    expect(() =>
      createService({ name: 'mailer', knex, kafka, consumers: [{ topics: [], handlers: { A: () => {} } }] }),
    ).toThrow(/topics must list the topics/);
    expect(() =>
      createService({ name: 'mailer', knex, kafka, consumers: [{ topics: ['a'], handlers: { A: 'send' as never } }] }),
    ).toThrow(/handlers.A must be a handler function/);
  });

  it('refuses to start on a pool too small for its parts, names the number, and leaves nothing running', async () => {
    const topic = randomTopic('small-pool');
    await createTopics(services.kafkaBrokers, [topic], 1);
    const knex = await database(3);
    const service = createService({
      name: 'starved',
      knex,
      transport: transport(),
      consumers: [{ topics: [topic], handlers: { T: () => {} } }],
    });
    const error = await service.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOptionError);
    // relay 2 lanes + keeper + LISTEN, scheduler 1, consumer 4 partitions in flight
    expect((error as Error).message).toMatch(/holds at most 3 connections, but this service needs 9 at once/);
    expect(service.state).toBe('stopped');
    expect(service.parts().map((p) => p.state)).toEqual(['idle', 'idle', 'idle']);
  });
});
