import type { TopicPartition } from '../subscriber.js';
import { assignPartitions, difference, partitionKey } from './assignment.js';
import type { TopicRegistry } from './topics.js';

/** What the group needs from a member to move partitions between members. */
export interface GroupMember {
  readonly topics: readonly string[];
  /** Stops delivering these partitions; resolves once their deliveries in flight are done. */
  revoke(partitions: TopicPartition[]): Promise<void>;
  /** Starts delivering these partitions from the group's committed offsets. */
  start(partitions: TopicPartition[]): void;
  /** Tells the member everything it owns after the rebalance (the port's `assigned`). */
  assigned(partitions: TopicPartition[]): void;
}

/** A consumer group's committed offset of one partition, as `broker.committed(groupId)` lists it. */
export interface CommittedOffset extends TopicPartition {
  /** The next offset the group reads, as Kafka commits it (last settled + 1), a decimal string. */
  offset: string;
}

/**
 * A consumer group: its committed offsets and its members' partitions.
 *
 * Joins and leaves are serialized, and a rebalance first revokes (waiting for the
 * delivery in flight to finish and commit) and only then starts the new owners, so a
 * partition is never delivered by two members at once and the new owner starts exactly
 * after what the old one settled. Kafka gets there with generations and fencing; in one
 * process waiting is enough.
 */
export class ConsumerGroup {
  readonly #members: GroupMember[] = [];
  readonly #owned = new Map<GroupMember, TopicPartition[]>();
  readonly #committed = new Map<string, CommittedOffset>();
  readonly #topics: TopicRegistry;
  #queue: Promise<void> = Promise.resolve();

  constructor(topics: TopicRegistry) {
    this.#topics = topics;
  }

  /** The next offset to read of a partition, or undefined when the group never committed one. */
  committed(tp: TopicPartition): number | undefined {
    const entry = this.#committed.get(partitionKey(tp));
    return entry ? Number(entry.offset) : undefined;
  }

  commit(tp: TopicPartition, next: number): void {
    this.#committed.set(partitionKey(tp), { topic: tp.topic, partition: tp.partition, offset: String(next) });
  }

  offsets(): CommittedOffset[] {
    return [...this.#committed.values()]
      .map((entry) => ({ ...entry }))
      .sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  }

  join(member: GroupMember): Promise<void> {
    return this.#serialized(async () => {
      this.#members.push(member);
      await this.#rebalance();
    });
  }

  leave(member: GroupMember): Promise<void> {
    return this.#serialized(async () => {
      const index = this.#members.indexOf(member);
      if (index < 0) return;
      await member.revoke(this.#owned.get(member) ?? []);
      this.#members.splice(index, 1);
      this.#owned.delete(member);
      await this.#rebalance();
    });
  }

  async #rebalance(): Promise<void> {
    const counts = new Map<string, number>();
    for (const topic of new Set(this.#members.flatMap((m) => m.topics)))
      counts.set(topic, this.#topics.partitionCount(topic));
    const plan = assignPartitions(this.#members, counts);
    const members = [...this.#members];
    await Promise.all(members.map((m, i) => m.revoke(difference(this.#owned.get(m) ?? [], plan[i]!))));
    // Kafka tells every member its assignment after a join, before fetching.
    for (const [i, m] of members.entries()) m.assigned(plan[i]!);
    for (const [i, m] of members.entries()) {
      const gained = difference(plan[i]!, this.#owned.get(m) ?? []);
      this.#owned.set(m, plan[i]!);
      m.start(gained);
    }
  }

  #serialized(step: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(step);
    // One failed step must not wedge every later join or leave of the group.
    this.#queue = next.catch(() => {});
    return next;
  }
}
