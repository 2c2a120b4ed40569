/*
 * The consumer's spans (OpenTelemetry messaging conventions): `process {topic}`
 * (CONSUMER) per record, parented on the message's creation context from its
 * `traceparent`/`tracestate` headers (single-message processing), active while the
 * record settles, so what the handler enqueues through the bound outbox is its child.
 * What happened to the record is on it in the `eventual.consumer.*` namespace:
 * attempts, retries (events), a duplicate, a dead letter (status ERROR), a record
 * abandoned by a stop or a rebalance. Without a registered tracer provider none of
 * this runs (see core's telemetry.ts).
 */

import { failSpan, MESSAGING, spanContextFromHeaders, type TelemetryApi, tracing } from '@eventual/core';
import { HEADER } from '@eventual/outbox';
import type { Context, Span } from '@opentelemetry/api';
import type { InboundRecord } from '../subscriber.js';
import type { PipelineContext, Settled } from './context.js';

const TRACER = '@eventual/consumer';

/** A record's `process` span and the context it is active in. */
export interface RecordSpan {
  span: Span;
  context: Context;
  /** Runs `work` with the span active. */
  within<T>(work: () => Promise<T>): Promise<T>;
  /** Ends the span, failed with `error` if given. */
  end(error?: unknown): void;
}

/** Starts the `process {topic}` span of `record`; undefined when tracing is off. */
export function startRecordSpan({ o }: PipelineContext, record: InboundRecord): RecordSpan | undefined {
  const t = tracing(TRACER);
  if (!t) return undefined;
  const { api } = t;
  const creation = spanContextFromHeaders(api, record.headers);
  // Not the context active in the subscriber: a record's trace is its message's.
  const parent = creation ? api.trace.setSpanContext(api.ROOT_CONTEXT, creation) : api.ROOT_CONTEXT;
  const offset = Number(record.offset);
  const span = t.tracer.startSpan(
    `process ${record.topic}`,
    {
      kind: api.SpanKind.CONSUMER,
      attributes: {
        [MESSAGING.system]: 'kafka',
        [MESSAGING.operationType]: 'process',
        [MESSAGING.operationName]: 'process',
        [MESSAGING.destination]: record.topic,
        [MESSAGING.partition]: String(record.partition),
        [MESSAGING.consumerGroup]: o.subscriber.groupId ?? o.name,
        [MESSAGING.offset]: Number.isSafeInteger(offset) ? offset : undefined,
        [MESSAGING.key]: record.key ?? undefined,
        [MESSAGING.messageId]: record.headers[HEADER.id],
        [MESSAGING.conversationId]: record.headers[HEADER.correlationId],
        'eventual.message.type': record.headers[HEADER.type],
        'eventual.consumer.name': o.name,
      },
    },
    parent,
  );
  const context = api.trace.setSpan(parent, span);
  return {
    span,
    context,
    within: (work) => api.context.with(context, work),
    end(error) {
      if (error !== undefined) failSpan(api, span, error);
      span.end();
    },
  };
}

/** Settles one record inside its `process` span (or just settles it, untraced). */
export async function traceRecord(
  ctx: PipelineContext,
  record: InboundRecord,
  settle: () => Promise<Settled>,
): Promise<Settled> {
  const rs = startRecordSpan(ctx, record);
  if (!rs) return settle();
  try {
    const settled = await rs.within(settle);
    if (settled === 'abandoned') rs.span.setAttribute('eventual.consumer.abandoned', true);
    rs.end();
    return settled;
  } catch (error) {
    rs.end(error);
    throw error;
  }
}

/**
 * Notes what happened to the record on its `process` span, the active one while it
 * settles; nothing (one check) when tracing is off.
 */
export function noteRecord(note: (span: Span, api: TelemetryApi) => void): void {
  const t = tracing(TRACER);
  const span = t?.api.trace.getActiveSpan();
  if (t && span) note(span, t.api);
}
