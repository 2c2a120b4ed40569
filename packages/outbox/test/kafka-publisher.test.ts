import { createTopics, randomTopic, readTopics, testServices } from '@eventual/devstack/testing';
import { createKafkaPublisher } from '@eventual/outbox';
import { Kafka, logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';

const services = testServices();

describe('createKafkaPublisher', () => {
  it('publishes without kafkajs warning about its partitioner or its retries at start, on the partition the Java client would pick', async () => {
    const topic = randomTopic('quiet');
    await createTopics(services.kafkaBrokers, [topic], 3);
    const warnings: string[] = [];
    const kafka = new Kafka({
      clientId: 'quiet-publisher',
      brokers: services.kafkaBrokers,
      logLevel: logLevel.WARN,
      logCreator:
        () =>
        ({ level, log }) => {
          if (level <= logLevel.WARN) warnings.push(log.message);
        },
    });
    const publisher = createKafkaPublisher({ kafka });
    try {
      await publisher.publish([{ id: 'm1', topic, key: 'k3', value: '{"n":1}', headers: { 'message-id': 'm1' } }]);
    } finally {
      await publisher.close();
    }
    // What a new user saw at every start: "KafkaJS v2.0.0 switched default partitioner"
    // and "Limiting retries for the idempotent producer may invalidate EoS guarantees".
    expect(warnings).toEqual([]);
    const reader = await readTopics(services.kafkaBrokers, [topic]);
    try {
      const [record] = await reader.waitForCount(1);
      // The Java client's murmur2 placement (kafkajs' DefaultPartitioner): k3 -> 1 of 3;
      // kafkajs' LegacyPartitioner would put it on 2.
      expect(record).toMatchObject({ key: 'k3', value: '{"n":1}', partition: 1 });
    } finally {
      await reader.stop();
    }
  });
});
