import { createMemoryBroker, type MemoryBroker } from '@eventual/consumer/memory';
import { describeTransportContract } from './contract/transport-contract.js';

// The in-memory pair against the same contract as the Kafka pair (transport-kafka.test.ts).
describeTransportContract(
  'in-memory broker',
  () => {
    const broker: MemoryBroker = createMemoryBroker();
    return {
      publisher: () => broker.publisher(),
      subscriber: (groupId) => broker.subscriber({ groupId }),
      async createTopics(names, partitions) {
        for (const name of names) broker.createTopic(name, { partitions });
      },
      async close() {},
    };
  },
  { waitMs: 5_000 },
);
