import { InvalidOptionError, type Logger, type TypedEmitter } from '@eventual/core';
import type { Knex } from 'knex';
import type { OutboxCounters, OutboxEventMap } from './events.js';
import type { JsonValue, Message } from './message.js';
import type { ResolvedOutboxOptions } from './options.js';

/** What a check-back checker answers about a prepared message whose producer went silent. */
export type CheckAnswer = 'commit' | 'rollback' | 'unknown';
/**
 * Answers for a prepared message whose producer went silent. `P` types the payload the
 * way `consumer.handle<P>` does, as the producer prepared it: `registerChecker<Capture>(...)`.
 */
export type Checker<P = JsonValue> = (message: Message<P>) => CheckAnswer | Promise<CheckAnswer>;

/**
 * What the outbox's own relay, check-back and jobs need from an outbox, and its users
 * never do: resolved options, the emitter, counters, the checkers. Reached through
 * `contextOf`, module-private to this package, so `Outbox` keeps to its user verbs.
 */
export interface OutboxContext {
  o: ResolvedOutboxOptions;
  events: TypedEmitter<OutboxEventMap>;
  counters: OutboxCounters;
  logger: Logger;
  checkerFor(message: Pick<Message, 'topic' | 'type'>): Checker | undefined;
}

const contexts = new WeakMap<object, OutboxContext>();

export function registerContext(outbox: object, context: OutboxContext): void {
  contexts.set(outbox, context);
}

export function contextOf(outbox: unknown): OutboxContext {
  const context = typeof outbox === 'object' && outbox !== null ? contexts.get(outbox) : undefined;
  if (!context) throw new InvalidOptionError('expected an outbox created with createOutbox({ knex })');
  return context;
}

/**
 * The database an outbox lives in: for the packages that keep their tables next to it
 * (the consumer's inbox, the saga store) and for a service's scheduler, whose run
 * leases share the outbox's lease table.
 */
export interface OutboxDatabase {
  /** The outbox's knex instance (its `knex` option). */
  knex: Knex;
  /** The schema of the outbox's tables (its `schema` option, default `eventual`). */
  schema: string;
  /** Quoted, schema-qualified lease table (relay shards, scheduled runs). */
  leasesTable: string;
}

/**
 * The database `outbox` lives in. Throws `InvalidOptionError` if `outbox` was not made
 * by `createOutbox`.
 */
export function outboxDatabase(outbox: unknown): OutboxDatabase {
  const { o } = contextOf(outbox);
  return { knex: o.knex, schema: o.schema, leasesTable: o.tables.leases };
}
