import { fileURLToPath } from 'node:url';
import { createConsumer, createKafkaSubscriber } from '@eventual/consumer';
import { waitUntil } from '@eventual/devstack';
import { createTopics, randomTopic, startChild, testServices } from '@eventual/devstack/testing';
import { createKafkaPublisher, createOutbox, createRelay, type Message } from '@eventual/outbox';
import knexFactory, { type Knex } from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { applyDeposit, createLedger } from './fixtures/ledger.js';

const services = testServices();
const relayProcess = fileURLToPath(new URL('../packages/outbox/test/fixtures/relay-process.ts', import.meta.url));
const consumerProcess = fileURLToPath(new URL('./fixtures/ledger-consumer.ts', import.meta.url));
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});
const connect = (url: string): Knex => {
  const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 8 } });
  cleanups.push(() => knex.destroy());
  return knex;
};

describe('outbox -> relay -> Kafka -> consumer, with a crash on each side', () => {
  it('applies every message exactly once and in per-key order although the relay republished and the consumer was killed between its commit and its offset commit', async () => {
    const topic = randomTopic('deposits');
    await createTopics(services.kafkaBrokers, [topic], 3);
    const brokers = services.kafkaBrokers.join(',');

    // The producing service: 600 deposits over 12 accounts, sequence numbers per account.
    const producerUrl = await services.createDatabase('producer');
    const producerDb = connect(producerUrl);
    const outbox = createOutbox({ knex: producerDb });
    await outbox.migrate({ shards: 4 });
    const sent: Message[] = [];
    for (let n = 0; n < 50; n++) {
      const batch = Array.from({ length: 12 }, (_, a) => ({
        topic,
        key: `acct-${a}`,
        type: 'Deposit',
        payload: { account: `acct-${a}`, n, amount: a + n },
      }));
      sent.push(...(await producerDb.transaction((trx) => outbox.enqueue(trx, batch))));
    }

    // The consuming service, first incarnation: dies right after its 150th commit.
    const consumerUrl = await services.createDatabase('ledger');
    const consumerDb = connect(consumerUrl);
    await createLedger(consumerDb);
    const group = `ledger-${Date.now()}`;
    const firstConsumer = createConsumer({
      outbox: createOutbox({ knex: consumerDb }),
      name: group,
      topics: [topic],
      subscriber: createKafkaSubscriber({ kafka: services.kafka('migrate'), groupId: group }),
    });
    await firstConsumer.options.outbox.migrate({ shards: 4 });
    await firstConsumer.migrate();
    const doomedConsumer = startChild(consumerProcess, [consumerUrl, brokers, topic, group, '150']);
    cleanups.push(() => doomedConsumer.kill());

    // Relay, first incarnation: publishes a batch, then dies before marking it.
    const doomedRelay = startChild(relayProcess, [producerUrl, brokers, 'hang-after-ack', '1500']);
    cleanups.push(() => doomedRelay.kill());
    const acked = (await doomedRelay.waitFor('acked')).ids as string[];
    await doomedRelay.kill();
    expect(acked.length).toBeGreaterThan(0);

    // Relay, second incarnation: republishes that batch (same ids) and the rest.
    const publisher = createKafkaPublisher({ kafka: services.kafka('relay') });
    const relay = createRelay(outbox, { publisher, leaseTtlMs: 1_500, pollIntervalMs: 100 });
    cleanups.push(async () => {
      await relay.stop();
      await publisher.close();
    });
    await relay.start();
    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 30_000 }).toBe(0);

    await waitUntil(
      'the consumer to kill itself after 150 commits',
      async () => (doomedConsumer.child.signalCode === 'SIGKILL' ? true : undefined),
      { timeoutMs: 60_000 },
    );

    // The consuming service restarts and catches up.
    const consumer = createConsumer({
      outbox: createOutbox({ knex: consumerDb }),
      name: group,
      topics: [topic],
      retention: { schedule: false },
      subscriber: createKafkaSubscriber({
        kafka: services.kafka('ledger'),
        groupId: group,
        consumer: { sessionTimeout: 6_000, rebalanceTimeout: 10_000, heartbeatInterval: 300, maxWaitTimeInMs: 100 },
      }),
    });
    consumer.handle('Deposit', applyDeposit);
    cleanups.push(() => consumer.stop());
    await consumer.start();
    await waitUntil(
      'every deposit in the ledger',
      async () => {
        const [row] = await consumerDb('ledger').countDistinct({ n: 'message_id' });
        return Number(row?.n) >= sent.length ? true : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    // Let any duplicate still in flight land before counting (the duplicates counter settles).
    await waitUntil('the consumer to be caught up', async () => (consumer.lag().total === 0 ? true : undefined), {
      timeoutMs: 30_000,
    });

    const ledger = await consumerDb('ledger').orderBy('seq').select('message_id', 'account', 'n', 'amount');
    expect(ledger).toHaveLength(sent.length); // no message applied twice
    expect(new Set(ledger.map((r) => r.message_id))).toEqual(new Set(sent.map((m) => m.id)));
    const perAccount = new Map<string, number[]>();
    for (const row of ledger) perAccount.set(row.account, [...(perAccount.get(row.account) ?? []), row.n]);
    for (const [account, ns] of perAccount)
      expect(ns, `order of ${account}`).toEqual(Array.from({ length: 50 }, (_, i) => i));
    // The faults really happened: the relay's batch reached Kafka twice, the consumer
    // saw at least the record it had committed but not acknowledged.
    expect(consumer.counters.duplicates).toBeGreaterThanOrEqual(1);
  }, 240_000);
});
