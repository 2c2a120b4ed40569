import type { BoundOutbox, JsonValue, Message } from '@eventual/outbox';
import type { Knex } from 'knex';

/** What a handler gets for one message. */
export interface HandlerContext<P = JsonValue> {
  /**
   * The record's transaction. The inbox row is already in it: write your changes with
   * it and they commit together, exactly once (in batch mode, together with the other
   * records of the batch). The consumer owns it: `commit()` and `rollback()` throw;
   * throw to roll back, or use `trx.transaction()` for a savepoint.
   */
  trx: Knex.Transaction;
  /**
   * The message as the relay published it. `payload` is what the handler's `parse`
   * returned; without `parse`, the JSON payload as it came (`P` is then not checked).
   */
  message: Message<P>;
  /**
   * `outbox.enqueue(...)` inside `trx`: the messages are published if and only if the
   * transaction commits. correlation-id defaults to the incoming message's, causation-id
   * to the incoming message id.
   */
  outbox: BoundOutbox;
  /** 1 for the first attempt; counted in the inbox, so it survives restarts and rebalances. */
  attempt: number;
  /** Where the record sits on Kafka. */
  record: { topic: string; partition: number; offset: string; timestamp: string };
}

/**
 * Handles one message type, in the record's transaction: return to commit it. A throw
 * rolls it back and is retried with backoff, or dead-lettered at once when the error
 * has `retriable: false` (`NonRetriableError`) and after `maxAttempts` otherwise.
 */
export type Handler<P = JsonValue> = (context: HandlerContext<P>) => Promise<void> | void;

/** Options of `consumer.handle(type, handler, options)`. */
export interface HandlerOptions<P> {
  /**
   * Validates and converts the payload before anything is written (step 1 of the
   * pipeline). Throw to reject it: the record is dead-lettered as `malformed` with your
   * error message, and never retried.
   */
  parse?: (payload: JsonValue) => P;
}

export interface RegisteredHandler {
  handler: Handler<unknown>;
  parse: ((payload: JsonValue) => unknown) | undefined;
}
