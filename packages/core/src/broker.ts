import { EventualError } from './errors.js';
import { integer } from './validate.js';

// The broker-side vocabulary every transport shares (kafkajs today, another Kafka client
// later): why a broker could not be reached, and the errors about topics. The
// classification itself is transport specific and lives with the transport.

/**
 * Why the brokers could not be reached:
 * - `refused`: nothing listens on the address (wrong port, broker down);
 * - `dns`: the host name does not resolve;
 * - `tls`: the TLS handshake failed (TLS against a plaintext listener, a certificate problem);
 * - `sasl`: authentication failed or the listener does not speak SASL;
 * - `timeout`: no answer within the bound (a firewall dropping packets, a hung broker);
 * - `unknown`: something else; the message and `cause` say what.
 */
export type BrokerFailure = 'refused' | 'dns' | 'tls' | 'sasl' | 'timeout' | 'unknown';

/** What to check for each kind of failure, as it appears in the error message. */
const FIX: Record<BrokerFailure, string> = {
  refused: 'check the host and port in brokers and that the broker is running',
  dns: 'check the host names in brokers (they do not resolve from here)',
  tls: 'check ssl: the listener may be plaintext, or its certificate is not trusted',
  sasl: 'check sasl (mechanism, username, password): the listener may not use SASL, or rejects the credentials',
  timeout: 'check the network path to the brokers (firewall, advertised.listeners) and that they answer',
  unknown: 'see the cause',
};

/**
 * The brokers did not answer within the start's bound (`connectTimeoutMs`), so the
 * part did not start. Retriable: a broker that comes up makes the next start succeed.
 * `brokers` are the addresses the client tried, as far as the client reported them.
 */
export class BrokerUnreachableError extends EventualError {
  override name = 'BrokerUnreachableError';
  /** The kind of failure, from the client's last error; the message says what to check for it. */
  readonly reason: BrokerFailure;
  /** The `host:port` addresses tried; empty when the client did not report them. */
  readonly brokers: readonly string[];
  /** The bound that ran out, in ms (the part's `connectTimeoutMs`). */
  readonly timeoutMs: number;
  constructor(
    what: string,
    reason: BrokerFailure,
    brokers: readonly string[],
    timeoutMs: number,
    detail: string,
    cause?: unknown,
  ) {
    const tried = brokers.length > 0 ? brokers.join(', ') : 'the brokers configured on the client';
    super(
      'broker_unreachable',
      `${what}: cannot reach Kafka at ${tried} within ${timeoutMs} ms (${reason}: ${detail}); ${FIX[reason]}`,
      { retriable: true, cause },
    );
    this.reason = reason;
    this.brokers = brokers;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Topics a consumer reads (or a declaration verifies) do not exist. Nothing creates
 * them behind the user's back: a topic auto-created by a first consumer or producer
 * gets the broker's defaults (often one partition, replication 1), which is wrong for
 * per-key order across instances and for durability.
 */
export class TopicNotFoundError extends EventualError {
  override name = 'TopicNotFoundError';
  /** The names of the missing topics. */
  readonly topics: readonly string[];
  constructor(what: string, topics: readonly string[]) {
    super(
      'topic_not_found',
      `${what}: topic(s) ${topics.join(', ')} do not exist; declare them in createService({ topics: [{ name, partitions }] }) ` +
        '(or call ensureTopics()) to have them created, or create them with kafka-topics.sh --create',
      { retriable: false },
    );
    this.topics = topics;
  }
}

/** A topic exists but differs from its declaration in a way eventual refuses to run with. */
export class TopicMismatchError extends EventualError {
  override name = 'TopicMismatchError';
  /**
   * The topic that differs. When `ensureKafkaTopics` finds several, one error names
   * them all here, joined by `, `, and each line of `problems` starts with its topic.
   */
  readonly topic: string;
  /** One line per difference, e.g. `replication factor 1, declared 3: fewer copies than ...`. */
  readonly problems: readonly string[];
  constructor(topic: string, problems: readonly string[]) {
    super('topic_mismatch', `topic ${topic} does not match its declaration: ${problems.join('; ')}`, {
      retriable: false,
    });
    this.topic = topic;
    this.problems = problems;
  }
}

/**
 * Keeps track of one outage of a dependency, so it is reported once when it begins
 * and once when it ends, whatever the number of retries in between (and whatever the
 * number of loops, e.g. relay lanes, that see it).
 */
export class OutageTracker {
  #since: number | undefined;

  /** Whether an outage is going on. */
  get active(): boolean {
    return this.#since !== undefined;
  }

  /** Notes a failure: true only for the first one of an outage (report it). */
  begin(now = Date.now()): boolean {
    if (this.#since !== undefined) return false;
    this.#since = now;
    return true;
  }

  /** Notes a success: the outage's duration in ms if one was going on (report its end), else undefined. */
  end(now = Date.now()): number | undefined {
    if (this.#since === undefined) return undefined;
    const duration = now - this.#since;
    this.#since = undefined;
    return duration;
  }
}

/**
 * How long `start()` of a relay or consumer (and so of a service) waits for the
 * brokers before failing with a `BrokerUnreachableError`: 15 s, a little more than
 * kafkajs needs to exhaust its default connection retries (about 10 s), so its own
 * diagnosis (refused, DNS, TLS, SASL) arrives within the bound.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

/** A `connectTimeoutMs`-like option: 100 ms to 10 minutes, `fallback` when absent. */
export function connectTimeout(option: string, value: unknown, fallback = DEFAULT_CONNECT_TIMEOUT_MS): number {
  return integer(option, value ?? fallback, 100, 600_000);
}
