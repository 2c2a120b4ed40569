import { createKafkaSubscriber } from '@eventual/consumer';
import { createTopics, testServices } from '@eventual/devstack/testing';
import { createKafkaPublisher } from '@eventual/outbox';
import { describeTransportContract } from './contract/transport-contract.js';
import { FAST_GROUP } from './support.js';

const services = testServices();

// The kafkajs pair against the real broker of the test setup: the reference the
// in-memory pair (transport-memory.test.ts) is held to.
describeTransportContract(
  'kafkajs',
  () => ({
    publisher: () => createKafkaPublisher({ kafka: services.kafka('contract-publisher') }),
    subscriber: (groupId) => createKafkaSubscriber({ kafka: services.kafka(groupId), groupId, consumer: FAST_GROUP }),
    createTopics: (names, partitions) => createTopics(services.kafkaBrokers, names, partitions),
    async close() {},
  }),
  { waitMs: 30_000 },
);
