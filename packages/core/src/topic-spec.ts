import { InvalidOptionError } from './errors.js';
import { topicName } from './names.js';
import { integer, knownKeys, object } from './validate.js';

/**
 * A topic as a service declares it: what `ensureTopics()` creates when it is missing
 * and checks when it exists.
 */
export interface TopicSpec {
  /** The topic's name: letters, digits, `.`, `_` and `-`, at most 249 characters. */
  name: string;
  /**
   * Partitions. Records of one key always go to one partition (hash of the key modulo
   * the count): that is what keeps per-key order, and what caps how many consumer
   * instances share the work. Never fewer than declared; more is accepted.
   */
  partitions: number;
  /** Copies of each partition. Default 1 (a single-broker development cluster); use 3 in production. */
  replicationFactor?: number;
  /** `min.insync.replicas`: with acks from all replicas, writes fail rather than land on fewer copies. */
  minInsyncReplicas?: number;
  /** `retention.ms`: how long records are kept; -1 keeps them forever. */
  retentionMs?: number;
  /** Other topic configs, e.g. `{ 'cleanup.policy': 'delete', 'max.message.bytes': '2000000' }`. */
  config?: Record<string, string>;
}

/** A `TopicSpec` with its defaults applied and its settings as Kafka topic configs. */
export interface ResolvedTopicSpec {
  /** The topic's name, validated. */
  name: string;
  /** Partitions, as declared. */
  partitions: number;
  /** Copies of each partition: as declared, or 1. */
  replicationFactor: number;
  /** Every config to set at creation and to verify: `config` plus min.insync.replicas and retention.ms. */
  config: Record<string, string>;
}

const CONFIG_NAME = /^[a-z0-9]+(\.[a-z0-9]+)*$/;

/** Validates a list of topic declarations (`option` names it in errors), with defaults applied. */
export function topicSpecs(option: string, value: unknown): ResolvedTopicSpec[] {
  if (!Array.isArray(value))
    throw new InvalidOptionError(
      `${option} must be an array of topics { name, partitions, replicationFactor?, ... }, got ${JSON.stringify(value)}`,
    );
  const specs = value.map((spec, i) => topicSpec(`${option}[${i}]`, spec));
  const seen = new Set<string>();
  for (const spec of specs) {
    if (seen.has(spec.name)) throw new InvalidOptionError(`${option} declares topic ${spec.name} more than once`);
    seen.add(spec.name);
  }
  return specs;
}

function topicSpec(option: string, value: unknown): ResolvedTopicSpec {
  const spec = object(option, value) as TopicSpec;
  knownKeys(option, spec, ['name', 'partitions', 'replicationFactor', 'minInsyncReplicas', 'retentionMs', 'config']);
  const name = topicName(`${option}.name`, spec.name);
  const partitions = integer(`${option}.partitions`, spec.partitions, 1, 100_000);
  const replicationFactor = integer(`${option}.replicationFactor`, spec.replicationFactor ?? 1, 1, 100);
  const config: Record<string, string> = {};
  for (const [key, v] of Object.entries(
    spec.config === undefined ? {} : (object(`${option}.config`, spec.config) as Record<string, unknown>),
  )) {
    if (!CONFIG_NAME.test(key) || typeof v !== 'string')
      throw new InvalidOptionError(
        `${option}.config.${key} must be a Kafka topic config name (e.g. cleanup.policy) with a string value, got ${JSON.stringify(v)}`,
      );
    config[key] = v;
  }
  if (spec.minInsyncReplicas !== undefined) {
    const min = integer(`${option}.minInsyncReplicas`, spec.minInsyncReplicas, 1, replicationFactor);
    setOnce(option, config, 'min.insync.replicas', String(min), 'minInsyncReplicas');
  }
  if (spec.retentionMs !== undefined) {
    const retention = integer(`${option}.retentionMs`, spec.retentionMs, -1);
    setOnce(option, config, 'retention.ms', String(retention), 'retentionMs');
  }
  return { name, partitions, replicationFactor, config };
}

function setOnce(option: string, config: Record<string, string>, key: string, value: string, field: string) {
  if (key in config)
    throw new InvalidOptionError(`${option} sets ${key} twice, as ${field} and in config; keep ${field}`);
  config[key] = value;
}

/** What `ensureTopics()` did with one declared topic. */
export interface EnsuredTopic {
  /** The declared topic's name. */
  name: string;
  /** `created`: it was missing and now exists; `verified`: it existed and matches what matters. */
  action: 'created' | 'verified';
  /** Partitions, as the broker reports them now. */
  partitions: number;
  /** Copies of each partition as the broker reports them now (on Kafka, the fewest of any partition). */
  replicationFactor: number;
  /**
   * Differences accepted but worth knowing (more partitions or replicas than declared, a
   * config such as retention.ms set otherwise). Differences that break a guarantee are a
   * `TopicMismatchError` instead.
   */
  notes: string[];
}

/**
 * Compares an existing topic with its declaration: the problems that make it unusable
 * (`errors`: fewer partitions, replicas or min.insync.replicas than declared) and the
 * differences that do not (`notes`). Pure, shared by every transport's `ensureTopics`.
 * `config` holds the topic's current values of the declared config names (absent: unknown).
 */
export function compareTopic(
  spec: ResolvedTopicSpec,
  actual: { partitions: number; replicationFactor: number; config: Record<string, string | undefined> },
): { errors: string[]; notes: string[] } {
  const errors: string[] = [];
  const notes: string[] = [];
  if (actual.partitions < spec.partitions)
    errors.push(
      `it has ${actual.partitions} partition(s), declared ${spec.partitions}: keys hash to partitions by count, so ` +
        'adding partitions later moves keys and breaks per-key order; recreate the topic, or declare the count it has',
    );
  else if (actual.partitions > spec.partitions)
    notes.push(`${actual.partitions} partitions, more than the ${spec.partitions} declared`);
  if (actual.replicationFactor < spec.replicationFactor)
    errors.push(
      `replication factor ${actual.replicationFactor}, declared ${spec.replicationFactor}: fewer copies than the ` +
        'durability you declared; reassign its partitions (kafka-reassign-partitions.sh) or lower the declaration',
    );
  else if (actual.replicationFactor > spec.replicationFactor)
    notes.push(`replication factor ${actual.replicationFactor}, more than the ${spec.replicationFactor} declared`);
  for (const [key, declared] of Object.entries(spec.config)) {
    const current = actual.config[key];
    if (current === declared) continue;
    if (key === 'min.insync.replicas' && (current === undefined || Number(current) < Number(declared)))
      errors.push(
        `min.insync.replicas is ${current ?? 'unknown'}, declared ${declared}: writes could be acknowledged by fewer ` +
          'replicas than you declared; set it with kafka-configs.sh --alter --add-config',
      );
    else notes.push(`${key} is ${current ?? 'unknown'}, declared ${declared} (left as it is)`);
  }
  return { errors, notes };
}
