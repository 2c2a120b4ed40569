import {
  compareTopic,
  connectTimeout,
  type EnsuredTopic,
  EventualError,
  errorMessage,
  knownKeys,
  object,
  type ResolvedTopicSpec,
  sleep,
  TopicMismatchError,
  TopicNotFoundError,
  type TopicSpec,
  topicSpecs,
} from '@eventual/core';
import kafkajs, { type Admin, type Kafka } from 'kafkajs';
import { withKafkaAdmin } from './kafka-connect.js';

// kafkajs is CommonJS, and Node's ESM loader cannot see this export among the spread
// in its module.exports: a named import works under vitest and fails under plain node.
const { ConfigResourceTypes } = kafkajs;

/**
 * The topics of `topics` the brokers do not have. Asks with a metadata request for all
 * topics (`listTopics`), which never creates one, even with auto.create.topics.enable:
 * a consumer must not bring into being, with the broker's default partition count, a
 * topic nobody declared.
 */
export async function missingKafkaTopics(admin: Admin, topics: readonly string[]): Promise<string[]> {
  let missing = [...topics];
  // In a cluster a broker that just restarted can answer before it has heard of a
  // topic created elsewhere: ask again, about a second in all, before calling it missing.
  for (const pause of [0, 250, 500]) {
    if (pause > 0) await sleep(pause);
    const existing = new Set(await admin.listTopics());
    missing = missing.filter((t) => !existing.has(t));
    if (missing.length === 0) break;
  }
  return missing;
}

/** Options of `ensureKafkaTopics`. */
export interface EnsureKafkaTopicsOptions {
  /** Bound of the whole call: connecting, creating, and waiting for the leaders. Default 15,000 ms. */
  timeoutMs?: number;
}

/**
 * Creates the declared topics that are missing and verifies those that exist (see
 * `compareTopic`: fewer partitions, replicas or min.insync.replicas than declared is a
 * `TopicMismatchError`; other differences are notes). Waits until metadata shows every
 * created partition with a leader, so a produce right after cannot race the creation.
 * Safe to run from several instances at once: a topic another one created meanwhile
 * is verified instead. Usable on its own (a deploy step, the future
 * `eventual topics ensure`); `createService({ topics })` calls it at start.
 */
export async function ensureKafkaTopics(
  kafka: Kafka,
  topics: readonly TopicSpec[],
  options: EnsureKafkaTopicsOptions = {},
): Promise<EnsuredTopic[]> {
  const specs = topicSpecs('topics', topics);
  knownKeys('ensureKafkaTopics', object('ensureKafkaTopics options', options), ['timeoutMs']);
  const timeoutMs = connectTimeout('timeoutMs', options.timeoutMs);
  if (specs.length === 0) return [];
  return withKafkaAdmin(kafka, 'ensureTopics', timeoutMs, async (admin) => {
    const missing = new Set(
      await missingKafkaTopics(
        admin,
        specs.map((s) => s.name),
      ),
    );
    const toCreate = specs.filter((s) => missing.has(s.name));
    if (toCreate.length > 0) await createTopics(admin, toCreate);
    const described = await describeTopics(admin, specs);
    const ensured: EnsuredTopic[] = [];
    const mismatches: TopicMismatchError[] = [];
    for (const spec of specs) {
      const actual = described.get(spec.name);
      if (!actual) throw new TopicNotFoundError('ensureTopics (created, but not in the metadata)', [spec.name]);
      const { errors, notes } = compareTopic(spec, actual);
      if (errors.length > 0) mismatches.push(new TopicMismatchError(spec.name, errors));
      ensured.push({
        name: spec.name,
        action: missing.has(spec.name) ? 'created' : 'verified',
        partitions: actual.partitions,
        replicationFactor: actual.replicationFactor,
        notes,
      });
    }
    // The first mismatch is thrown; its message names the topic, the rest are listed.
    if (mismatches.length === 1) throw mismatches[0];
    if (mismatches.length > 1)
      throw new TopicMismatchError(
        mismatches.map((m) => m.topic).join(', '),
        mismatches.flatMap((m) => m.problems.map((p) => `${m.topic}: ${p}`)),
      );
    return ensured;
  });
}

async function createTopics(admin: Admin, specs: ResolvedTopicSpec[]): Promise<void> {
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: specs.map((s) => ({
        topic: s.name,
        numPartitions: s.partitions,
        replicationFactor: s.replicationFactor,
        configEntries: Object.entries(s.config).map(([name, value]) => ({ name, value })),
      })),
    });
  } catch (error) {
    // TOPIC_ALREADY_EXISTS: another instance created it meanwhile; verified below.
    const inner = (error as { errors?: Array<{ type?: string }> }).errors ?? [];
    if (inner.length > 0 && inner.every((e) => e.type === 'TOPIC_ALREADY_EXISTS')) return;
    const type = (error as { type?: unknown }).type;
    if (type === 'TOPIC_ALREADY_EXISTS') return;
    if (typeof type === 'string' || inner.length > 0)
      throw new EventualError(
        'topic_create_failed',
        `ensureTopics could not create ${specs.map((s) => s.name).join(', ')}: ${describeCreateError(error)}`,
        { retriable: false, cause: error },
      );
    throw error;
  }
  // waitForLeaders covers the controller's view; wait until a metadata request shows them too.
  for (let round = 1; ; round += 1) {
    const missing = await missingKafkaTopics(
      admin,
      specs.map((s) => s.name),
    );
    if (missing.length === 0) return;
    await sleep(Math.min(50 * round, 500));
  }
}

function describeCreateError(error: unknown): string {
  const inner = (error as { errors?: Array<{ topic?: string; message?: string; type?: string }> }).errors ?? [];
  if (inner.length === 0) return errorMessage(error);
  return inner.map((e) => `${e.topic ?? '?'}: ${e.type ?? ''} ${e.message ?? ''}`.trim()).join('; ');
}

interface DescribedTopic {
  partitions: number;
  replicationFactor: number;
  config: Record<string, string | undefined>;
}

async function describeTopics(admin: Admin, specs: ResolvedTopicSpec[]): Promise<Map<string, DescribedTopic>> {
  const names = specs.map((s) => s.name);
  const { topics } = await admin.fetchTopicMetadata({ topics: names });
  const configNames = [...new Set(specs.flatMap((s) => Object.keys(s.config)))];
  const configs = new Map<string, Record<string, string | undefined>>();
  if (configNames.length > 0) {
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: names.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames })),
    });
    for (const resource of described.resources)
      configs.set(
        resource.resourceName,
        Object.fromEntries(resource.configEntries.map((e) => [e.configName, e.configValue])),
      );
  }
  return new Map(
    topics.map((t) => [
      t.name,
      {
        partitions: t.partitions.length,
        replicationFactor: Math.min(...t.partitions.map((p) => p.replicas.length)),
        config: configs.get(t.name) ?? {},
      },
    ]),
  );
}
