import {
  databaseOf,
  InvalidOptionError,
  integer,
  isKnexTransaction,
  isUuid,
  sameDatabase,
  TypedEmitter,
} from '@eventual/core';
import type { Knex } from 'knex';
import { type CheckAnswer, type Checker, registerContext } from './context.js';
import {
  ForeignTransactionError,
  InvalidMessageError,
  PreparedMessageResolvedError,
  TransactionRequiredError,
  UnknownMessageError,
} from './errors.js';
import type { OutboxCounters, OutboxEventMap, OutboxEventName } from './events.js';
import {
  buildRow,
  type JsonValue,
  type Message,
  type MessageInput,
  type MessageRow,
  type PreparedRow,
  rowToMessage,
} from './message.js';
import { migrateOutbox, type OutboxSchemaOptions } from './migrations.js';
import { CommitNotifier } from './notifier.js';
import { type OutboxOptions, resolveOutboxOptions } from './options.js';
import { requeueDead, selectDead, selectStats } from './sql/dead.js';
import { insertMessages } from './sql/enqueue.js';
import { type Resolution, resolvePrepared, selectState } from './sql/prepared.js';
import { run } from './sql/statement.js';
import { startCreateSpans } from './telemetry.js';

export type { CheckAnswer, Checker };

/**
 * Which prepared messages a checker answers for: a topic, a type, or both. A message
 * goes to the checker of its topic and type, else of its type, else of its topic.
 */
export interface CheckerSelector {
  /** Messages of this topic (any type, unless `type` is given too). */
  topic?: string;
  /** Messages of this type (any topic, unless `topic` is given too). */
  type?: string;
}

/** A message the relay gave up on (`dead`), as `listDead()` returns it. */
export interface DeadMessage extends Message {
  /** Failed publication attempts; a permanent error sends a message dead at once, whatever the count. */
  attempts: number;
  /** The message of the last publish error. */
  lastError: string | null;
  /** When it was enqueued (or prepared). */
  createdAt: Date;
}

/** A snapshot of the outbox table, as `stats()` reads it. */
export interface OutboxStats {
  /** Messages waiting for the relay, including those backing off after a failure. */
  pending: number;
  /** Prepared messages not yet committed or rolled back. */
  prepared: number;
  /** Messages that went dead and wait for `requeue()`. */
  dead: number;
  /** Age in ms of the oldest pending message: how far behind the relay is. */
  lagMs: number;
}

/** Messages enqueued through an outbox bound to one transaction, e.g. in a consumer handler. */
export interface BoundOutbox {
  /** `outbox.enqueue(trx, message)`, with the bound correlation and causation ids unless the message sets its own. */
  enqueue<P>(message: MessageInput<P>): Promise<Message>;
  /** Several messages in one insert, as `outbox.enqueue(trx, messages)`; returns them in the same order. */
  enqueue<P>(messages: MessageInput<P>[]): Promise<Message[]>;
}

/**
 * A service's transactional outbox: messages are written in the caller's transaction
 * (`enqueue`) or as prepared messages resolved later (`prepare`, `commit`,
 * `rollback`, the check-back), and a relay (`createRelay`) moves them to Kafka.
 */
export interface Outbox {
  /** Creates or upgrades the outbox tables (idempotent). `shards` applies only on creation. */
  migrate(options?: Pick<OutboxSchemaOptions, 'shards'>): Promise<void>;
  /** Inserts `pending` messages inside the caller's transaction; returns them with ids and headers. */
  enqueue<P>(trx: Knex.Transaction, message: MessageInput<P>): Promise<Message>;
  /**
   * Several messages in one insert, all or none (a bad one throws, naming its index,
   * before anything is written); returns them in the same order.
   */
  enqueue<P>(trx: Knex.Transaction, messages: MessageInput<P>[]): Promise<Message[]>;
  /** `enqueue` with `trx` fixed and correlation/causation defaults, for handlers. */
  bind(trx: Knex.Transaction, defaults?: { correlationId?: string; causationId?: string }): BoundOutbox;
  /** Stores a `prepared` (half) message and commits it (or writes in `trx` when given). */
  prepare<P>(message: MessageInput<P>, options?: { trx?: Knex.Transaction }): Promise<Message>;
  /** prepared -> pending. Idempotent; throws `PreparedMessageResolvedError` if it was rolled back. */
  commit(id: string, options?: { trx?: Knex.Transaction }): Promise<void>;
  /** prepared -> cancelled. Idempotent; throws `PreparedMessageResolvedError` if it was committed. */
  rollback(id: string, options?: { trx?: Knex.Transaction }): Promise<void>;
  /**
   * Registers the check-back checker for prepared messages of a topic and/or type. `P` is
   * the payload type those messages were prepared with (not validated: parse it in the
   * checker if other producers share the topic).
   */
  registerChecker<P = JsonValue>(selector: CheckerSelector, checker: Checker<P>): () => void;
  /** Dead messages in id order, paged with `afterId`. */
  listDead(options?: { limit?: number; afterId?: string; topic?: string }): Promise<DeadMessage[]>;
  /** dead -> pending with a fresh attempt budget; returns the ids that moved. */
  requeue(ids: string[]): Promise<string[]>;
  /** Pending, prepared and dead counts, and the age of the oldest pending message. */
  stats(): Promise<OutboxStats>;
  /** Running totals of the check-back and cleanup jobs (the relay has its own). */
  readonly counters: Readonly<OutboxCounters>;
  /** Events of the check-back, cleanup and dead sweep; returns an unsubscribe function. */
  on<E extends OutboxEventName>(event: E, listener: (payload: OutboxEventMap[E]) => void): () => void;
}

/**
 * An outbox on `options.knex`. Only validates options (throws `InvalidOptionError`):
 * nothing touches the database until a call, and the tables must exist first
 * (`migrate()` or `outboxMigrations()`).
 */
export function createOutbox(options: OutboxOptions): Outbox {
  const o = resolveOutboxOptions(options);
  const events = new TypedEmitter<OutboxEventMap>('outbox', o.logger);
  const counters: OutboxCounters = { checked: 0, cleaned: 0 };
  const checkers = new Map<string, Checker>();
  const notifier = new CommitNotifier(o);
  const checkerFor = ({ topic, type }: Pick<Message, 'topic' | 'type'>) =>
    checkers.get(checkerKey(topic, type)) ??
    checkers.get(checkerKey(undefined, type)) ??
    checkers.get(checkerKey(topic, undefined));

  async function insert(
    db: Knex | Knex.Transaction,
    inputs: MessageInput[],
    state: 'pending' | 'prepared',
    checkAfterMs: number | null,
  ) {
    // Each message's creation context: its `create` span, a child of the caller's span.
    const spans = startCreateSpans(inputs, state);
    let written: { shard: number }[];
    let rows: PreparedRow[];
    // Pending rows wake the relays: after the caller's commit when its outcome can be
    // observed (one NOTIFY per transaction, outside it), else from inside the insert.
    const notifyLater = state === 'pending' && isKnexTransaction(db) && notifier.canNotifyAfterCommit(db);
    try {
      rows = inputs.map((input, i) => {
        try {
          const row = buildRow(input, o.maxMessageBytes, spans?.headers(i));
          spans?.identify(i, row.message.id);
          return row;
        } catch (error) {
          if (inputs.length > 1 && error instanceof InvalidMessageError)
            error.message = `messages[${i}]: ${error.message}`;
          throw error;
        }
      });
      if (rows.length === 0) return [];
      written = await run<{ shard: number }>(
        db,
        insertMessages(o, rows, state, checkAfterMs, state === 'pending' && !notifyLater),
      );
    } catch (error) {
      spans?.end(error);
      throw error;
    }
    spans?.end();
    if (notifyLater)
      notifier.afterCommit(
        db as Knex.Transaction,
        written.map((w) => w.shard),
      );
    return rows.map((row) => row.message);
  }

  async function resolve(id: string, resolution: Resolution, trx: Knex.Transaction | undefined): Promise<void> {
    if (trx !== undefined) assertTransaction(trx, `outbox.${resolution}`, o.knex);
    const db = trx ?? o.knex;
    assertId(id);
    const resolved = await run<{ state: string }>(db, resolvePrepared(o, id, resolution, 'producer', null));
    if (resolved.length > 0) return;
    const [current] = await run<{ state: string }>(db, selectState(o, id));
    if (!current) throw new UnknownMessageError(id);
    const wanted = resolution === 'commit' ? ['pending', 'published', 'dead'] : ['cancelled'];
    if (wanted.includes(current.state)) return; // already resolved the same way: idempotent
    throw new PreparedMessageResolvedError(id, resolution, current.state);
  }

  const outbox: Outbox = {
    async migrate(schemaOptions = {}) {
      await migrateOutbox(o.knex, { schema: o.schema, table: o.table, ...schemaOptions });
    },
    enqueue: (async (trx: Knex.Transaction, input: MessageInput | MessageInput[]) => {
      assertTransaction(trx, 'outbox.enqueue', o.knex);
      const messages = await insert(trx, Array.isArray(input) ? input : [input], 'pending', null);
      return Array.isArray(input) ? messages : messages[0];
    }) as Outbox['enqueue'],
    bind(trx, defaults = {}) {
      assertTransaction(trx, 'outbox.bind', o.knex);
      const withDefaults = (m: MessageInput): MessageInput => ({
        ...m,
        correlationId: m.correlationId ?? defaults.correlationId,
        causationId: m.causationId ?? defaults.causationId,
      });
      return {
        enqueue: ((input: MessageInput | MessageInput[]) =>
          Array.isArray(input)
            ? outbox.enqueue(trx, input.map(withDefaults))
            : outbox.enqueue(trx, withDefaults(input))) as BoundOutbox['enqueue'],
      };
    },
    async prepare(input, { trx } = {}) {
      if (trx !== undefined) assertTransaction(trx, 'outbox.prepare', o.knex);
      const checker = checkerFor(input);
      if (!checker) {
        throw new InvalidOptionError(
          `no check-back checker is registered for topic '${input.topic}' / type '${input.type}'; ` +
            'register one with outbox.registerChecker() before preparing, or the check-back could never resolve it',
        );
      }
      const [message] = await insert(trx ?? o.knex, [input], 'prepared', o.checkBack.checkAfterMs);
      return message!;
    },
    commit: (id, { trx } = {}) => resolve(id, 'commit', trx),
    rollback: (id, { trx } = {}) => resolve(id, 'rollback', trx),
    registerChecker(selector, checker) {
      if (
        selector === null ||
        typeof selector !== 'object' ||
        (selector.topic === undefined && selector.type === undefined)
      ) {
        throw new InvalidOptionError(
          'registerChecker needs { topic } and/or { type } to say which prepared messages it answers for',
        );
      }
      if (typeof checker !== 'function')
        throw new InvalidOptionError(
          'registerChecker needs a checker function (message) => "commit" | "rollback" | "unknown"',
        );
      const key = checkerKey(selector.topic, selector.type);
      if (checkers.has(key)) throw new InvalidOptionError(`a checker is already registered for ${key}`);
      // The payload arrives as the JSON the producer prepared; P is the caller's name for it.
      checkers.set(key, checker as Checker);
      return () => void checkers.delete(key);
    },
    async listDead({ limit = 100, afterId, topic } = {}) {
      integer('limit', limit, 1, 10_000);
      if (afterId !== undefined) assertId(afterId);
      const rows = await run<DeadRow>(o.knex, selectDead(o, limit, afterId ?? null, topic ?? null));
      return rows.map((r) => ({
        ...rowToMessage(r),
        attempts: r.attempts,
        lastError: r.last_error,
        createdAt: r.created_at,
      }));
    },
    async requeue(ids) {
      if (!Array.isArray(ids)) throw new InvalidOptionError('requeue needs an array of message ids');
      for (const id of ids) assertId(id);
      if (ids.length === 0) return [];
      const rows = await run<{ id: string }>(o.knex, requeueDead(o, ids));
      return rows.map((r) => r.id);
    },
    async stats() {
      const [row] = await run<{ pending: number; prepared: number; dead: number; lag_ms: number }>(
        o.knex,
        selectStats(o),
      );
      return { pending: row!.pending, prepared: row!.prepared, dead: row!.dead, lagMs: Math.round(row!.lag_ms) };
    },
    counters,
    on: (event, listener) => events.on(event, listener),
  };
  registerContext(outbox, { o, events, counters, logger: o.logger, checkerFor });
  return outbox;
}

interface DeadRow extends MessageRow {
  attempts: number;
  last_error: string | null;
  created_at: Date;
}

function checkerKey(topic: string | undefined, type: string | undefined): string {
  return `topic=${topic ?? '*'} type=${type ?? '*'}`;
}

function assertId(id: unknown): void {
  if (!isUuid(id)) throw new InvalidOptionError(`message id must be a UUID, got ${JSON.stringify(id)}`);
}

/**
 * A plain knex instance would commit the message without the business change, and a
 * transaction of another database would put it in that database's outbox: refuse both.
 */
function assertTransaction(trx: unknown, operation: string, knex: Knex): void {
  if (!isKnexTransaction(trx)) throw new TransactionRequiredError(operation);
  if (!sameDatabase(trx, knex))
    throw new ForeignTransactionError(operation, databaseOf(trx) ?? 'unknown', databaseOf(knex) ?? 'unknown');
}
