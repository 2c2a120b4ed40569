/*
 * How a record is observed (OpenTelemetry messaging conventions), in one place.
 *
 * Span: `process {topic}` (CONSUMER) per record, parented on the message's creation
 * context from its `traceparent`/`tracestate` headers (single-message processing),
 * active while the record settles, so what the handler enqueues through the bound
 * outbox is its child. What happened to the record is on it in the
 * `eventual.consumer.*` namespace: attempts, retries (events), a duplicate, a dead
 * letter (status ERROR), a record ignored or abandoned by a stop or a rebalance.
 *
 * Metrics: `messaging.client.consumed.messages` once per delivery,
 * `messaging.process.duration` per settled record (`error.type`: the dead-letter
 * reason), and `eventual.consumer.duplicates` / `eventual.consumer.dead_lettered`.
 *
 * The steps report what happened with `noteRecord` / `noteRetry`, which find the
 * record's observation in an AsyncLocalStorage. Without a registered tracer or meter
 * provider there is no observation: one check per record and per note, nothing else.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import {
  durationHistogram,
  failSpan,
  instruments,
  MESSAGING,
  messageCounter,
  spanContextFromHeaders,
  type Tracing,
  tracing,
} from '@eventual/core';
import { HEADER } from '@eventual/outbox';
import type { Attributes, Span } from '@opentelemetry/api';
import type { DeadLetterReason } from '../events.js';
import type { InboundRecord } from '../subscriber.js';
import type { PipelineContext, Settled } from './context.js';

const SCOPE = '@eventual/consumer';

const consumerInstruments = instruments(SCOPE, (meter) => ({
  consumed: messageCounter(
    meter,
    'messaging.client.consumed.messages',
    'Records delivered to the consumer, once per delivery.',
  ),
  duration: durationHistogram(
    meter,
    'messaging.process.duration',
    'Time to settle a record: inbox claim, handler attempts and retries, or its dead letter.',
  ),
  duplicates: messageCounter(meter, 'eventual.consumer.duplicates', 'Records the inbox already had: nothing ran.'),
  deadLettered: messageCounter(
    meter,
    'eventual.consumer.dead_lettered',
    'Records sent to their dead-letter topic, by reason.',
  ),
}));

/** What happened to a record, as the pipeline's steps note it. */
export interface RecordOutcome {
  /** The attempt that committed. */
  attempts?: number;
  /** The inbox already had the message. */
  duplicate?: boolean;
  /** An unknown type skipped (`onUnknownType: 'ignore'`). */
  ignored?: boolean;
  /** Dead-lettered: why, and the dead letter. */
  deadLetter?: {
    reason: DeadLetterReason;
    errorCode: string;
    error: string;
    topic: string;
    id: string;
    attempts: number;
  };
}

/** One record's span (when traced) and metrics (when metered), and what happened to it. */
export interface RecordObservation {
  /** Runs `work` with the record's span active (just runs it, untraced). */
  within<T>(work: () => Promise<T>): Promise<T>;
  /** Adds to what happened. */
  note(outcome: RecordOutcome): void;
  /** An attempt failed and is retried after `retryInMs`. */
  retried(attempt: number, retryInMs: number, error: Error): void;
  /** Ends it: how the record settled, or the batch rollback / failure that left it unsettled here. */
  end(result: Settled | { rolledBack: unknown } | { failed: unknown }): void;
}

const settling = new AsyncLocalStorage<RecordObservation>();

/**
 * Starts observing `record`; undefined when neither a tracer nor a meter provider is
 * registered. `delivered`: count the delivery (false when this record's delivery was
 * counted already, by the batch that rolled back before it is settled on its own).
 */
export function observeRecordStart(
  ctx: PipelineContext,
  record: InboundRecord,
  options: { delivered: boolean; batch: boolean },
): RecordObservation | undefined {
  const t = tracing(SCOPE);
  const metrics = consumerInstruments();
  if (!t && !metrics) return undefined;
  const group = ctx.o.subscriber.groupId ?? ctx.o.name;
  const common: Attributes = {
    [MESSAGING.system]: 'kafka',
    [MESSAGING.operationName]: 'process',
    [MESSAGING.destination]: record.topic,
    [MESSAGING.consumerGroup]: group,
  };
  if (options.delivered) metrics?.consumed.add(1, { ...common, [MESSAGING.partition]: String(record.partition) });
  const started = performance.now();
  const span = t && startProcessSpan(t, record, group, ctx.o.name);
  if (span && options.batch) span.setAttribute('eventual.consumer.batch', true);
  const context = span && t.api.trace.setSpan(parentOf(t, record), span);
  const outcome: RecordOutcome = {};
  return {
    within: (work) => (t && context ? t.api.context.with(context, work) : work()),
    note: (more) => void Object.assign(outcome, more),
    retried(attempt, retryInMs, error) {
      span?.addEvent('eventual.consumer.retry', {
        'eventual.consumer.attempt': attempt,
        'eventual.consumer.retry_in_ms': retryInMs,
        'exception.type': error.name,
        'exception.message': error.message,
      });
    },
    end(result) {
      const letter = outcome.deadLetter;
      if (metrics && (result === 'done' || typeof result === 'object')) {
        const settled = result === 'done';
        if (settled || 'failed' in result)
          metrics.duration.record((performance.now() - started) / 1000, {
            ...common,
            'error.type': letter?.reason ?? (settled ? undefined : 'error'),
          });
        if (settled && outcome.duplicate) metrics.duplicates.add(1, common);
        if (settled && letter)
          metrics.deadLettered.add(1, { ...common, 'eventual.consumer.dead_letter.reason': letter.reason });
      }
      if (span && t) endProcessSpan(t, span, outcome, result);
    },
  };
}

/** Settles one record inside its observation (or just settles it, unobserved). */
export async function observeRecord(
  ctx: PipelineContext,
  record: InboundRecord,
  settle: () => Promise<Settled>,
  delivered = true,
): Promise<Settled> {
  const observation = observeRecordStart(ctx, record, { delivered, batch: false });
  if (!observation) return settle();
  try {
    const settled = await settling.run(observation, () => observation.within(settle));
    observation.end(settled);
    return settled;
  } catch (error) {
    observation.end({ failed: error });
    throw error;
  }
}

/** Notes what happened to the record settling here; nothing (one check) when it is not observed. */
export function noteRecord(outcome: RecordOutcome): void {
  settling.getStore()?.note(outcome);
}

/** Notes a retry of the record settling here; nothing (one check) when it is not observed. */
export function noteRetry(attempt: number, retryInMs: number, error: Error): void {
  settling.getStore()?.retried(attempt, retryInMs, error);
}

/** The message's creation context, from its headers; the root when it has none. Not the subscriber's context. */
function parentOf({ api }: Tracing, record: InboundRecord) {
  const creation = spanContextFromHeaders(api, record.headers);
  return creation ? api.trace.setSpanContext(api.ROOT_CONTEXT, creation) : api.ROOT_CONTEXT;
}

function startProcessSpan(t: Tracing, record: InboundRecord, group: string, consumer: string): Span {
  const offset = Number(record.offset);
  return t.tracer.startSpan(
    `process ${record.topic}`,
    {
      kind: t.api.SpanKind.CONSUMER,
      attributes: {
        [MESSAGING.system]: 'kafka',
        [MESSAGING.operationType]: 'process',
        [MESSAGING.operationName]: 'process',
        [MESSAGING.destination]: record.topic,
        [MESSAGING.partition]: String(record.partition),
        [MESSAGING.consumerGroup]: group,
        [MESSAGING.offset]: Number.isSafeInteger(offset) ? offset : undefined,
        [MESSAGING.key]: record.key ?? undefined,
        [MESSAGING.messageId]: record.headers[HEADER.id],
        [MESSAGING.conversationId]: record.headers[HEADER.correlationId],
        'eventual.message.type': record.headers[HEADER.type],
        'eventual.consumer.name': consumer,
      },
    },
    parentOf(t, record),
  );
}

function endProcessSpan(
  { api }: Tracing,
  span: Span,
  outcome: RecordOutcome,
  result: Settled | { rolledBack: unknown } | { failed: unknown },
): void {
  if (outcome.attempts !== undefined) span.setAttribute('eventual.consumer.attempts', outcome.attempts);
  if (outcome.duplicate) span.setAttribute('eventual.consumer.duplicate', true);
  if (outcome.ignored) span.setAttribute('eventual.consumer.ignored', true);
  const letter = outcome.deadLetter;
  if (letter) {
    span.setAttributes({
      'eventual.consumer.dead_lettered': true,
      'eventual.consumer.dead_letter.reason': letter.reason,
      'eventual.consumer.dead_letter.error_code': letter.errorCode,
      'eventual.consumer.dead_letter.topic': letter.topic,
      'eventual.consumer.dead_letter.id': letter.id,
      'eventual.consumer.attempts': letter.attempts,
    });
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: `dead-lettered (${letter.reason}): ${letter.error}` });
  }
  if (result === 'abandoned') span.setAttribute('eventual.consumer.abandoned', true);
  if (typeof result === 'object' && 'rolledBack' in result) {
    span.setAttribute('eventual.consumer.batch_rolled_back', true);
    failSpan(api, span, result.rolledBack);
  }
  if (typeof result === 'object' && 'failed' in result) failSpan(api, span, result.failed);
  span.end();
}
