import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { InvalidOptionError } from './errors.js';

/** A legal Kafka topic name: 1-249 of [a-zA-Z0-9._-], and not '.' or '..'. */
export function isTopicName(value: unknown): value is string {
  return typeof value === 'string' && /^[a-zA-Z0-9._-]{1,249}$/.test(value) && value !== '.' && value !== '..';
}

/** The topic rule in the words of an error message: `${option} must be ${TOPIC_RULE}`. */
export const TOPIC_RULE = 'a legal Kafka topic name (1-249 of [a-zA-Z0-9._-])';

/** A message type: what consumers dispatch on, e.g. `OrderCreated` (see `MESSAGE_TYPE_RULE`). */
export function isMessageType(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_.:/-]{1,200}$/.test(value);
}

/** The message type rule in the words of an error message: `type must be ${MESSAGE_TYPE_RULE}`. */
export const MESSAGE_TYPE_RULE = "1-200 of [A-Za-z0-9_.:/-], e.g. 'OrderCreated'";

/** `value` if it is a legal Kafka topic name; otherwise throws `InvalidOptionError` naming `option`. */
export function topicName(option: string, value: unknown): string {
  if (!isTopicName(value))
    throw new InvalidOptionError(`${option} must be ${TOPIC_RULE}, got ${JSON.stringify(value)}`);
  return value;
}

/** Names that reach SQL as identifiers: lower-case, start with a letter or underscore, fit in 40 chars. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,39}$/;

/**
 * `value` if it may reach SQL as an identifier (see `IDENTIFIER`); otherwise throws
 * `InvalidOptionError` naming `option`. Names that pass are safe to put between quotes.
 */
export function identifier(option: string, value: unknown): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new InvalidOptionError(
      `${option} must be a lower-case SQL identifier matching ${IDENTIFIER} (letters, digits, underscore), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** `"schema"."table"`: only ever built from names `identifier()` accepted. */
export function qualified(schema: string, table: string): string {
  return `"${schema}"."${table}"`;
}

/**
 * The default name of a relay, scheduler or consumer instance in leases and events:
 * `<hostname>-<pid>-<random>`, new for every process. Give a stable one (a pod name)
 * to let a restarted instance take its leases back at once.
 */
export function defaultInstanceId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}
