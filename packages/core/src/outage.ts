import { DatabaseUnavailableError, sqlStateOf } from './errors.js';

/**
 * Is this error an outage of the database connection rather than a failure of the
 * statement or of the caller's code? The one place eventual decides it; the relay,
 * the consumer pipeline, sagas and the scheduler all ask here. An outage is never
 * counted as a message's attempt: the step is repeated with backoff once the
 * database is back.
 *
 * Outages, wherever they surface (a claim, a handler's own statement, COMMIT, a probe):
 * - SQLSTATE class 08 (connection exception) and 57P01-57P05 (the server is shutting
 *   down or restarting, or terminated this backend: pg_terminate_backend, a restart,
 *   a crash of another backend), 53300 (too many connections);
 * - node-postgres losing its socket: "Connection terminated unexpectedly", a client
 *   that "has encountered a connection error and is not queryable";
 * - socket errors (ECONNRESET, ECONNREFUSED, EPIPE, ETIMEDOUT, ...);
 * - knex's pool giving up acquiring a connection ("Timeout acquiring a connection"),
 *   which is what a statement sees while the server is down. knex's client-side query
 *   timeout (`.timeout(ms)`, also a KnexTimeoutError) is not an outage.
 *
 * The cause chain is walked (knex and kafkajs wrap errors; `AggregateError` holds one
 * error per address tried), so a handler that wraps a driver error in its own still
 * counts as an outage when it passes the cause along.
 */
export function isDatabaseOutage(error: unknown): boolean {
  for (const e of causeChain(error)) {
    if (e instanceof DatabaseUnavailableError) return true;
    const state = sqlStateOf(e);
    if (state !== undefined && (state.startsWith('08') || OUTAGE_SQLSTATES.has(state))) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && SOCKET_CODES.has(code)) return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && OUTAGE_MESSAGES.some((pattern) => pattern.test(message))) return true;
  }
  return false;
}

const OUTAGE_SQLSTATES = new Set([
  '57P01', // admin_shutdown: fast/smart shutdown, pg_terminate_backend
  '57P02', // crash_shutdown: immediate shutdown, another backend crashed
  '57P03', // cannot_connect_now: the server is starting up or shutting down
  '57P04', // database_dropped
  '57P05', // idle_session_timeout
  '53300', // too_many_connections
]);

const SOCKET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTCONN',
  'EAI_AGAIN',
]);

const OUTAGE_MESSAGES = [
  /Connection terminated/i,
  /connection error and is not queryable/i,
  /Client was closed and is not queryable/i,
  /Timeout acquiring a connection/i,
  /server closed the connection unexpectedly/i,
  /terminating connection due to/i,
  /the database system is (starting up|shutting down|in recovery mode)/i,
];

/** The error, its causes (`cause`, `originalError`) and the errors an AggregateError holds, at most 20. */
export function causeChain(error: unknown): object[] {
  const chain: object[] = [];
  const queue: unknown[] = [error];
  while (queue.length > 0 && chain.length < 20) {
    const e = queue.shift();
    if (e === null || typeof e !== 'object' || chain.includes(e)) continue;
    chain.push(e);
    const { cause, originalError, errors } = e as { cause?: unknown; originalError?: unknown; errors?: unknown };
    queue.push(cause, originalError);
    if (Array.isArray(errors)) queue.push(...errors);
  }
  return chain;
}
