import { sleep } from '@eventual/core';
import type { InboundRecord } from '../subscriber.js';
import { type PipelineContext, position } from './context.js';

/**
 * The unknown-type hold. A record whose type has no handler is, right after a start,
 * far more often a handler not registered yet (registered after `start()`, a rolling
 * deploy where this instance runs the old code for a minute) than a message nobody
 * will ever handle. Dead-lettered at once, it would be gone for good (a replay skips
 * it as a duplicate). So for `unknownTypeGraceMs` after the consumer's start, such a
 * record is held: its partition does not advance, nothing is written, no attempt is
 * counted, one `consumer:held` event is emitted, and it is checked again every
 * `HOLD_RECHECK_MS` and at once when a handler is registered. After the grace,
 * `onUnknownType` decides, as it always did.
 */

/** How often a held record looks again, at most (a registration wakes it at once). */
export const HOLD_RECHECK_MS = 1_000;

/** How a hold ended: a handler appeared, the grace is over, or a stop/rebalance cut it short. */
export type HoldOutcome = 'handler' | 'expired' | 'abandoned';

/**
 * What the holds of one consumer share across its partitions: when the consumer
 * started (the grace runs from there) and the wake-up for a handler registered while
 * records are held.
 */
export class HandlerArrivals {
  /** Milliseconds since the epoch; set by `start()`. */
  startedAt = Date.now();
  readonly #waiters = new Set<() => void>();

  /** A handler was registered: every held record checks again now. */
  notify(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /** Resolves true after `ms` or at `notify()`, false as soon as `signal` aborts. */
  async wait(ms: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return false;
    const woken = new AbortController();
    const wake = () => woken.abort();
    this.#waiters.add(wake);
    signal.addEventListener('abort', wake, { once: true });
    try {
      await sleep(ms, woken.signal);
    } finally {
      this.#waiters.delete(wake);
      signal.removeEventListener('abort', wake);
    }
    return !signal.aborted;
  }
}

/**
 * Holds a record of a type without a handler while the grace lasts. Resolves at once
 * when a handler is there already or the grace is over (no event then); otherwise
 * emits `consumer:held` once and waits.
 */
export async function holdUnknownType(
  ctx: PipelineContext,
  record: InboundRecord,
  messageId: string,
  type: string,
  signal: AbortSignal,
): Promise<HoldOutcome> {
  const { o, handlers, arrivals, events, counters } = ctx;
  const until = arrivals.startedAt + o.unknownTypeGraceMs;
  if (handlers.has(type)) return 'handler';
  if (Date.now() >= until) return 'expired';
  counters.held += 1;
  events.emit('consumer:held', { ...position(ctx, record), messageId, type, until: new Date(until) });
  for (;;) {
    const remaining = Math.max(until - Date.now(), 0);
    if (!(await arrivals.wait(Math.min(HOLD_RECHECK_MS, remaining), signal))) return 'abandoned';
    if (handlers.has(type)) return 'handler';
    if (Date.now() >= until) return 'expired';
  }
}
