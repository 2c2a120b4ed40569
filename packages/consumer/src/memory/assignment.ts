import type { TopicPartition } from '../subscriber.js';

export interface GroupMemberTopics {
  readonly topics: readonly string[];
}

/**
 * Kafka's round-robin assignor, simplified: the group's partitions, sorted by topic
 * and number, are dealt in turn to the members (in join order) that subscribe to
 * their topic. Pure, so the split is predictable in a test: with two members and
 * four partitions of one topic, the first member gets 0 and 2, the second 1 and 3.
 * Returns one list per member, in the members' order.
 */
export function assignPartitions(
  members: readonly GroupMemberTopics[],
  partitionCounts: ReadonlyMap<string, number>,
): TopicPartition[][] {
  const plan = members.map((): TopicPartition[] => []);
  const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
  let turn = 0;
  for (const topic of topics) {
    const eligible = members.flatMap((m, index) => (m.topics.includes(topic) ? [index] : []));
    for (let partition = 0; partition < (partitionCounts.get(topic) ?? 0); partition += 1) {
      // Skip members that do not subscribe to this topic, keeping the deal's rotation.
      let index = eligible[0]!;
      for (let step = 0; step < members.length; step += 1) {
        const candidate = (turn + step) % members.length;
        if (eligible.includes(candidate)) {
          index = candidate;
          turn = candidate + 1;
          break;
        }
      }
      plan[index]!.push({ topic, partition });
    }
  }
  return plan;
}

export const partitionKey = (tp: TopicPartition): string => `${tp.topic}\u0000${tp.partition}`;

/** The partitions of `from` that are not in `without`. */
export function difference(from: readonly TopicPartition[], without: readonly TopicPartition[]): TopicPartition[] {
  const excluded = new Set(without.map(partitionKey));
  return from.filter((tp) => !excluded.has(partitionKey(tp)));
}
