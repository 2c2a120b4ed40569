import type { Message } from '@eventual/outbox';
import type { ConsumerCounters, Events, RecordPosition } from '../events.js';
import type { RegisteredHandler } from '../handler.js';
import type { ResolvedConsumerOptions } from '../options.js';
import type { InboxKey } from '../sql/inbox.js';
import type { InboundRecord } from '../subscriber.js';
import type { HandlerArrivals } from './hold.js';

/**
 * What every step of one consumer's pipeline works with, passed explicitly to each of
 * them: the resolved options, the handlers registered so far (read at each record, so
 * a handler registered or removed after start applies to the next record), and where
 * events and counters go.
 */
export interface PipelineContext {
  o: ResolvedConsumerOptions;
  handlers: Map<string, RegisteredHandler>;
  /** The consumer's start time and the wake-up for records held for want of a handler (hold.ts). */
  arrivals: HandlerArrivals;
  events: Events;
  counters: ConsumerCounters;
}

/**
 * How a record ended up: `done` once it is settled in the database (the subscriber may
 * commit its offset), `abandoned` when a stop or a rebalance cut a wait short (nothing
 * is settled; the record is redelivered later).
 */
export type Settled = 'done' | 'abandoned';

/** A record decoded and validated, with its handler: ready for step 2. */
export interface Ready {
  key: InboxKey;
  record: InboundRecord;
  message: Message<unknown>;
  registered: RegisteredHandler;
}

/** A record that settles without a handler of its own yet (malformed, unknown type): how it does. */
export interface SettleWithoutHandler {
  settle(signal: AbortSignal): Promise<Settled>;
}

/** The outcome of step 1 for one record. */
export type Prepared = Ready | SettleWithoutHandler;

export function isReady(prepared: Prepared): prepared is Ready {
  return !('settle' in prepared);
}

/** Where a record sits on Kafka, for this consumer's events and inbox keys. */
export function position({ o }: PipelineContext, record: InboundRecord): RecordPosition {
  return {
    consumer: o.name,
    instanceId: o.instanceId,
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
  };
}
