import { asError, func, InvalidOptionError, integer, object, TopicNotFoundError, topicName } from '@eventual/core';
import type { Subscriber, SubscriptionHandlers, TopicPartition } from '../subscriber.js';
import { partitionKey } from './assignment.js';
import type { ConsumerGroup, GroupMember } from './group.js';
import { type PartitionRun, reportSafely, startPartitionRun } from './partition-run.js';
import type { TopicRegistry } from './topics.js';

export interface MemorySubscriberSettings {
  groupId: string;
  fromBeginning: boolean;
  redeliveryDelayMs: number;
  topics: TopicRegistry;
  group: ConsumerGroup;
}

/**
 * A member of an in-memory consumer group. `subscribe` resolves once the member has
 * joined and its partitions are assigned (`assigned` already called), so a test can
 * publish right after it; `close` aborts every delivery's signal, waits for the
 * deliveries in flight (their settled records are committed), then leaves the group,
 * whose other members take its partitions over.
 */
export function createMemorySubscriber(settings: MemorySubscriberSettings): Subscriber {
  const runs = new Map<string, { tp: TopicPartition; run: PartitionRun }>();
  let state: 'new' | 'subscribed' | 'closed' = 'new';
  let member: GroupMember | undefined;
  let closing: Promise<void> | undefined;

  const stopRuns = (partitions: TopicPartition[]) =>
    Promise.all(
      partitions.map(async (tp) => {
        const owned = runs.get(partitionKey(tp));
        if (!owned) return;
        await owned.run.stop();
        runs.delete(partitionKey(tp));
      }),
    ).then(() => {});

  return {
    groupId: settings.groupId,
    async subscribe(topics, handlers) {
      if (state !== 'new')
        throw new InvalidOptionError(
          `the in-memory subscriber of group ${settings.groupId} is already ${state === 'closed' ? 'closed' : 'in use'}; create one per consumer`,
        );
      checkSubscription(topics, handlers);
      state = 'subscribed';
      for (const topic of topics) settings.topics.partitions(topic);
      member = {
        topics: [...new Set(topics)],
        revoke: stopRuns,
        start(partitions) {
          // A member that is closing takes on nothing new; the group moves it on at leave.
          if (state === 'closed') return;
          for (const tp of partitions)
            runs.set(partitionKey(tp), {
              tp,
              run: startPartitionRun({
                tp,
                log: settings.topics.partitions(tp.topic)[tp.partition]!,
                group: settings.group,
                handlers,
                fromBeginning: settings.fromBeginning,
                redeliveryDelayMs: settings.redeliveryDelayMs,
              }),
            });
        },
        assigned(partitions) {
          if (state === 'closed') return;
          try {
            handlers.assigned(partitions.map((tp) => ({ ...tp })));
          } catch (error) {
            reportSafely(handlers, asError(error));
          }
        },
      };
      await settings.group.join(member);
    },
    async verify(topics) {
      // As the Kafka subscriber: a topic nobody created (or published to) is an error.
      const missing = topics.filter((topic) => !settings.topics.has(topic));
      if (missing.length > 0) throw new TopicNotFoundError(`consumer group ${settings.groupId}`, missing);
    },
    close() {
      closing ??= (async () => {
        state = 'closed';
        if (!member) return;
        await stopRuns([...runs.values()].map((owned) => owned.tp));
        await settings.group.leave(member);
      })();
      return closing;
    },
  };
}

/** The same mistakes the Kafka subscriber would only reveal later, as errors at subscribe. */
function checkSubscription(topics: unknown, handlers: SubscriptionHandlers): void {
  if (!Array.isArray(topics) || topics.length === 0)
    throw new InvalidOptionError(`subscribe needs a non-empty array of topics, got ${JSON.stringify(topics)}`);
  for (const topic of topics) topicName('subscribe topics', topic);
  object('subscribe handlers', handlers);
  integer('handlers.maxRecords', handlers.maxRecords, 1, 100_000);
  func('handlers.deliver', handlers.deliver, '(records, { highWatermark, signal }) => Promise<number>');
  func('handlers.error', handlers.error, '(error, fatal) => void');
  func('handlers.assigned', handlers.assigned, '(partitions) => void');
  func('handlers.brokerUnavailable', handlers.brokerUnavailable, '(error) => void');
  func('handlers.brokerAvailable', handlers.brokerAvailable, '(downtimeMs) => void');
}
