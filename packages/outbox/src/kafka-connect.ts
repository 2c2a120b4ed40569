import {
  type BrokerFailure,
  BrokerUnreachableError,
  causeChain,
  EventualError,
  errorMessage,
  InvalidOptionError,
} from '@eventual/core';
import type { Admin, Kafka } from 'kafkajs';

/** Socket error codes by what they say about the broker address. */
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL']);
const REFUSED_CODES = new Set(['ECONNREFUSED']);
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);
/** kafkajs' SASL failures: the handshake against a listener without SASL, or refused credentials. */
const SASL_TYPES = new Set(['ILLEGAL_SASL_STATE', 'SASL_AUTHENTICATION_FAILED', 'UNSUPPORTED_SASL_MECHANISM']);
const TLS_MESSAGE = /TLS|SSL|certificate|self[- ]signed|CERT_|wrong version number|EPROTO/i;

/** What a failed kafkajs connection says about itself: why, and which brokers it named. */
export interface KafkaConnectFailure {
  /** The kind of failure; `unknown` when the chain shows none of the known signs. */
  reason: BrokerFailure;
  /** The broker addresses the errors in the chain name (kafkajs' `host:port`), each once; may be empty. */
  brokers: string[];
  /** The innermost error's message, the closest to what the socket or broker said. */
  detail: string;
}

/**
 * Classifies why kafkajs could not connect, from the error's cause chain (kafkajs wraps
 * the socket error in KafkaJSNumberOfRetriesExceeded). Verified against a real broker:
 * a closed port is ECONNREFUSED, an unknown host ENOTFOUND, TLS against a plaintext
 * listener "disconnected before secure TLS connection was established" (ECONNRESET),
 * SASL against a plaintext listener the protocol error ILLEGAL_SASL_STATE.
 */
export function classifyKafkaConnectError(error: unknown): KafkaConnectFailure {
  const chain = causeChain(error) as Array<{
    name?: unknown;
    type?: unknown;
    code?: unknown;
    message?: unknown;
    broker?: unknown;
  }>;
  const brokers = [...new Set(chain.map((e) => e.broker).filter((b): b is string => typeof b === 'string'))];
  const innermost = chain.at(-1) ?? {};
  const detail = typeof innermost.message === 'string' ? innermost.message : errorMessage(error);
  const has = (test: (e: (typeof chain)[number]) => boolean) => chain.some(test);
  const text = (e: (typeof chain)[number]) => (typeof e.message === 'string' ? e.message : '');
  let reason: BrokerFailure = 'unknown';
  if (has((e) => e.name === 'KafkaJSSASLAuthenticationError' || SASL_TYPES.has(String(e.type)))) reason = 'sasl';
  else if (has((e) => TLS_MESSAGE.test(text(e)) || /^ERR_SSL|^ERR_TLS|CERT/.test(String(e.code)))) reason = 'tls';
  else if (has((e) => DNS_CODES.has(String(e.code)))) reason = 'dns';
  else if (has((e) => REFUSED_CODES.has(String(e.code)))) reason = 'refused';
  else if (
    has(
      (e) =>
        TIMEOUT_CODES.has(String(e.code)) ||
        e.name === 'KafkaJSRequestTimeoutError' ||
        /Connection timeout/i.test(text(e)),
    )
  )
    reason = 'timeout';
  return { reason, brokers, detail };
}

/**
 * Runs `work` on a kafkajs admin client of its own, connected first, all within
 * `timeoutMs`; the admin is always disconnected afterwards. A failure to reach the
 * brokers (or no answer in time) becomes a `BrokerUnreachableError` naming them and
 * the reason; what `work` throws on purpose (an `EventualError`), and kafkajs errors
 * that are not about reaching a broker, pass through.
 *
 * kafkajs cannot be told to stop retrying a connect in flight: when the bound passes
 * first, the admin is disconnected now and once more when that connect settles, so no
 * connection is left open; kafkajs' own retry timers end within the client's `retry`
 * settings.
 */
export async function withKafkaAdmin<T>(
  kafka: Kafka,
  what: string,
  timeoutMs: number,
  work: (admin: Admin) => Promise<T>,
): Promise<T> {
  if (!kafka || typeof (kafka as { admin?: unknown }).admin !== 'function')
    throw new InvalidOptionError('kafka must be a kafkajs client: new Kafka({ clientId, brokers })');
  const admin = kafka.admin();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), timeoutMs);
  });
  let connected = false;
  let expiredFirst = false;
  const attempt = (async () => {
    await admin.connect();
    connected = true;
    return { value: await work(admin) };
  })();
  try {
    const outcome = await Promise.race([attempt, expired]);
    if (outcome === 'expired') {
      expiredFirst = true;
      throw new BrokerUnreachableError(
        what,
        'timeout',
        [],
        timeoutMs,
        connected ? 'connected, but the brokers did not answer' : 'no connection was established',
      );
    }
    return outcome.value;
  } catch (error) {
    if (error instanceof EventualError) throw error;
    // Connecting failed, or a request of `work` failed for want of a broker.
    const failure = classifyKafkaConnectError(error);
    if (!connected || failure.reason !== 'unknown')
      throw new BrokerUnreachableError(what, failure.reason, failure.brokers, timeoutMs, failure.detail, error);
    throw error;
  } finally {
    clearTimeout(timer);
    if (expiredFirst) {
      // A kafkajs disconnect waits for the connect in flight: do not wait for either.
      const disconnect = () => admin.disconnect().catch(() => {});
      void disconnect();
      void attempt.then(disconnect, disconnect);
    } else await admin.disconnect().catch(() => {});
  }
}
