import { type ConsumerConfig, Kafka, logLevel } from 'kafkajs';
import { PARTITIONS } from './topics.js';

export function kafkaClient(clientId: string, brokers: string[]): Kafka {
  return new Kafka({
    clientId,
    brokers,
    // Connection errors while a broker or a peer restarts are expected and retried by
    // eventual; kafkajs would print each one. Errors eventual cannot handle surface
    // through its own events, which the services log.
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 200, retries: 8 },
  });
}

/**
 * Group settings for services that get killed and restarted: with kafkajs' defaults a
 * SIGKILLed member holds its partitions for a 30 s session timeout; 6 s is the
 * broker's minimum. Heartbeats every second keep a live member in the group.
 */
export const GROUP_SETTINGS: Omit<ConsumerConfig, 'groupId'> = {
  sessionTimeout: 6_000,
  rebalanceTimeout: 10_000,
  heartbeatInterval: 1_000,
  maxWaitTimeInMs: 200,
};

/** Creates the topics that do not exist yet (idempotent; safe when several services race). */
export async function ensureTopics(brokers: string[], topics: string[], partitions = PARTITIONS): Promise<void> {
  const admin = kafkaClient('eventual-topics', brokers).admin();
  await admin.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        const existing = new Set(await admin.listTopics());
        const missing = topics.filter((t) => !existing.has(t));
        if (missing.length === 0) return;
        await admin.createTopics({
          topics: missing.map((topic) => ({ topic, numPartitions: partitions })),
          waitForLeaders: true,
        });
        return;
      } catch (error) {
        // Another service created some of them at the same moment, or the broker is
        // still starting: look again.
        if (attempt >= 10) throw error;
        await new Promise((resolve) => setTimeout(resolve, 300 * attempt));
      }
    }
  } finally {
    await admin.disconnect().catch(() => {});
  }
}
