import { createTopics, randomTopic, readTopics } from '@eventual/devstack/testing';
import { createKafkaPublisher, HEADER, PublishError, type Publisher } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture, inboxRows, uniqueName } from './support.js';

const fixture = consumerFixture('duplicates');
const brokers = fixture.services.kafkaBrokers;

describe('duplicate deliveries', () => {
  it('changes the database once when a relay republishes a message', async () => {
    const producer = await fixture.service(); // the producing service, with its own outbox
    const { knex, outbox } = await fixture.service(); // the consuming service
    const topic = randomTopic('shipments');
    await createTopics(brokers, [topic], 2);
    const consumer = await fixture.consumer({ outbox, name: uniqueName('shipping'), topics: [topic] });
    consumer.handle('ShipmentRequested', ({ trx, message }) => apply(trx, message));
    const duplicates: string[] = [];
    consumer.on('consumer:duplicate', (e) => duplicates.push(e.messageId));
    await consumer.start();

    // Kafka acknowledges the first publication but the relay never hears it (the crash
    // window between ack and mark): it retries and publishes the same message again.
    const kafkaPublisher = createKafkaPublisher({ kafka: fixture.services.kafka('relay') });
    let lostAcks = 1;
    const ackLosingPublisher: Publisher = {
      async publish(records) {
        await kafkaPublisher.publish(records);
        if (lostAcks-- > 0) throw new PublishError('retriable', 'acknowledgement lost');
      },
      close: () => kafkaPublisher.close(),
    };
    const [message] = await producer.knex.transaction((trx) =>
      producer.outbox.enqueue(trx, [{ topic, key: 'order-1', type: 'ShipmentRequested', payload: { items: 2 } }]),
    );
    const reader = await readTopics(brokers, [topic]);
    fixture.defer(() => reader.stop());
    fixture.relay(producer.outbox, { publisher: ackLosingPublisher }).start();

    await reader.waitFor(
      'the message twice on Kafka',
      (r) => r.filter((x) => x.headers[HEADER.id] === message!.id).length === 2,
    );
    await expect.poll(() => duplicates, { timeout: 20_000 }).toEqual([message!.id]);
    expect(consumer.counters).toMatchObject({ processed: 1, duplicates: 1 });
    expect(await appliedTimes(knex)).toEqual({ [message!.id]: 1 });
  });

  it('changes the database once when the group offsets are reset and the topic is replayed', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('invoices');
    await createTopics(brokers, [topic], 2);
    const name = uniqueName('billing');
    const first = await fixture.consumer({ outbox, name, topics: [topic] });
    first.handle('InvoiceIssued', ({ trx, message }) => apply(trx, message));
    await first.start();
    const ids = await fixture.produce(
      topic,
      Array.from({ length: 6 }, (_, i) => ({ key: `customer-${i % 3}`, type: 'InvoiceIssued', payload: { n: i } })),
    );
    await expect.poll(() => first.counters.processed, { timeout: 20_000 }).toBe(6);
    await first.stop();

    const admin = fixture.services.kafka('admin').admin();
    await admin.connect();
    fixture.defer(() => admin.disconnect());
    await admin.setOffsets({
      groupId: name,
      topic,
      partitions: [0, 1].map((partition) => ({ partition, offset: '0' })),
    });

    const replay = await fixture.consumer({ outbox, name, topics: [topic] });
    replay.handle('InvoiceIssued', ({ trx, message }) => apply(trx, message));
    await replay.start();

    await expect.poll(() => replay.counters.duplicates, { timeout: 20_000 }).toBe(6);
    expect(replay.counters.processed).toBe(0);
    expect(await appliedTimes(knex)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    expect((await inboxRows(knex, replay)).map((r) => r.state)).toEqual(Array(6).fill('processed'));
  });
});
