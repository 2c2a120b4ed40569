import { asError, sleep } from '@eventual/core';
import type { InboundRecord, SubscriptionHandlers, TopicPartition } from '../subscriber.js';
import type { ConsumerGroup } from './group.js';
import { type PartitionLog, toInbound } from './topics.js';

export interface PartitionRunContext {
  tp: TopicPartition;
  log: PartitionLog;
  group: ConsumerGroup;
  handlers: SubscriptionHandlers;
  /** Where to start when the group has no committed offset: the first record, or the log end. */
  fromBeginning: boolean;
  /** Pause before delivering again from an unsettled record. */
  redeliveryDelayMs: number;
}

export interface PartitionRun {
  /** Aborts the delivery's signal; resolves once the delivery in flight is done and committed. */
  stop(): Promise<void>;
}

/**
 * Delivers one partition to one member: from the group's committed offset, up to
 * `maxRecords` consecutive records per `deliver` call, one call at a time; commits
 * what `deliver` reports settled (even after an abort: "commits what is done").
 * A record left unsettled is delivered again from that offset after a pause, so a
 * deliver that keeps failing does not spin; nothing after it is delivered or
 * committed before it settles.
 */
export function startPartitionRun(ctx: PartitionRunContext): PartitionRun {
  const { tp, log, group, handlers } = ctx;
  const controller = new AbortController();
  const { signal } = controller;

  const running = (async () => {
    let position = group.committed(tp) ?? (ctx.fromBeginning ? 0 : log.end);
    while (!signal.aborted) {
      if (position >= log.end) {
        await log.waitFor(position, signal);
        continue;
      }
      const records = log.read(position, handlers.maxRecords).map(toInbound);
      const settled = await deliverSafely(handlers, records, { highWatermark: String(log.end), signal });
      if (settled > 0) {
        position += settled;
        group.commit(tp, position);
      }
      if (settled < records.length) await sleep(ctx.redeliveryDelayMs, signal);
    }
  })();

  let stopped: Promise<void> | undefined;
  return {
    stop() {
      controller.abort();
      stopped ??= running;
      return stopped;
    },
  };
}

/**
 * `deliver` must never reject and must resolve a count between 0 and the number of
 * records; a custom handler that breaks this is reported and treated as "nothing
 * settled", so the records are redelivered instead of lost or skipped.
 */
async function deliverSafely(
  handlers: SubscriptionHandlers,
  records: InboundRecord[],
  delivery: { highWatermark: string; signal: AbortSignal },
): Promise<number> {
  try {
    const settled = await handlers.deliver(records, delivery);
    if (Number.isInteger(settled) && settled >= 0 && settled <= records.length) return settled;
    throw new TypeError(
      `deliver resolved ${String(settled)} for ${records.length} record(s); it must resolve how many, from the first, are settled`,
    );
  } catch (error) {
    reportSafely(handlers, asError(error));
    return 0;
  }
}

/** A throwing `error` listener must not end the partition's delivery. */
export function reportSafely(handlers: SubscriptionHandlers, error: Error, fatal = false): void {
  try {
    handlers.error(error, fatal);
  } catch {
    // Nothing left to tell: the listener itself failed.
  }
}
