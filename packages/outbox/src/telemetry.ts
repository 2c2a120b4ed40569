/*
 * The outbox's spans and metrics (OpenTelemetry messaging conventions): `create {topic}`
 * per message at enqueue/prepare, whose context is the message's creation context,
 * written into its headers and so stored with the row and published as is; `send
 * {topic}` per relay batch, linked to each message's creation context, with the
 * messaging client metrics of the send. Without a registered tracer (meter) provider
 * no span (metric) work runs at all (see core's telemetry.ts).
 */

import {
  durationHistogram,
  failSpan,
  instruments,
  MESSAGING,
  messageCounter,
  spanContextFromHeaders,
  type Tracing,
  traceHeaders,
  tracing,
} from '@eventual/core';
import type { Link, Span } from '@opentelemetry/api';
import type { MessageInput } from './message.js';
import type { ClaimedRow } from './sql/claim.js';

const TRACER = '@eventual/outbox';

/** The `create` spans of one enqueue or prepare call, one per message, ended once the insert ran. */
export interface CreateSpans {
  /** The W3C headers of message `i`'s creation context. */
  headers(i: number): Record<string, string>;
  /** Names the message id on message `i`'s span, once assigned. */
  identify(i: number, id: string): void;
  /** Ends every span, failed with `error` if given. */
  end(error?: unknown): void;
}

/**
 * Starts a `create {topic}` span (PRODUCER) per message, each a child of the caller's
 * active span; undefined when tracing is off, so an untraced enqueue allocates nothing.
 */
export function startCreateSpans(
  inputs: readonly MessageInput[],
  state: 'pending' | 'prepared',
): CreateSpans | undefined {
  const t = tracing(TRACER);
  if (!t) return undefined;
  const spans = inputs.map((input) => startCreateSpan(t, input, state));
  return {
    headers: (i) => traceHeaders(spans[i]!.spanContext()),
    identify: (i, id) => void spans[i]!.setAttribute(MESSAGING.messageId, id),
    end(error) {
      for (const span of spans) {
        if (error !== undefined) failSpan(t.api, span, error);
        span.end();
      }
    },
  };
}

function startCreateSpan(t: Tracing, input: MessageInput, state: 'pending' | 'prepared'): Span {
  // The input is not validated yet: only strings become attributes.
  const text = (value: unknown) => (typeof value === 'string' ? value : undefined);
  const topic = text(input?.topic);
  return t.tracer.startSpan(topic ? `create ${topic}` : 'create', {
    kind: t.api.SpanKind.PRODUCER,
    attributes: {
      [MESSAGING.system]: 'kafka',
      [MESSAGING.operationType]: 'create',
      [MESSAGING.operationName]: 'create',
      [MESSAGING.destination]: topic,
      [MESSAGING.key]: text(input?.key),
      [MESSAGING.conversationId]: text(input?.correlationId),
      'eventual.message.type': text(input?.type),
      'eventual.outbox.state': state,
    },
  });
}

const relayInstruments = instruments(TRACER, (meter) => ({
  sent: messageCounter(
    meter,
    'messaging.client.sent.messages',
    'Messages the relay attempted to send to Kafka (error.type set when the send failed).',
  ),
  duration: durationHistogram(
    meter,
    'messaging.client.operation.duration',
    'Duration of one relay send (a batch), from the publish call to the broker acknowledgement or failure.',
  ),
}));

/** How a relay batch's send ended. */
export type SendOutcome = { fenced: number; markError?: unknown } | { error: unknown; kind: string };

/** The span and metrics of one relay batch. */
export interface SendObservation {
  /** Runs the publish with the `send` span active, so a client instrumentation's spans are its children. */
  publishing<T>(publish: () => Promise<T>): Promise<T>;
  /**
   * Ends it: published (`fenced` rows could not be marked; `markError` when marking
   * failed, so the rows will be sent again), or failed with the publish error's kind.
   */
  end(outcome: SendOutcome): void;
}

/**
 * Observes the send of a claimed batch; undefined when neither a tracer nor a meter
 * provider is registered.
 *
 * Span: `send {topic}` (CLIENT: the messages' own creation contexts are their `create`
 * spans), a new trace, never a child of whatever was active when the relay started,
 * with `messaging.batch.message_count` and a link to each message's creation context
 * (read from its headers, as stored at enqueue).
 *
 * Metrics: `messaging.client.sent.messages` per topic and `messaging.client.operation.duration`
 * per batch, with `error.type` (the publish error's kind) when the send failed.
 */
export function observeSend(rows: readonly ClaimedRow[]): SendObservation | undefined {
  const t = tracing(TRACER);
  const metrics = relayInstruments();
  if (!t && !metrics) return undefined;
  const started = performance.now();
  const topics = new Set(rows.map((row) => row.topic));
  const topic = topics.size === 1 ? rows[0]!.topic : undefined;
  const span = t && startSendSpan(t, rows, topic);
  return {
    publishing: (publish) => (span ? span.publishing(publish) : publish()),
    end(outcome) {
      span?.end(outcome);
      if (!metrics) return;
      const errorType = 'error' in outcome ? outcome.kind : undefined;
      const common = { [MESSAGING.system]: 'kafka', [MESSAGING.operationName]: 'send', 'error.type': errorType };
      metrics.duration.record((performance.now() - started) / 1000, {
        ...common,
        [MESSAGING.operationType]: 'send',
        [MESSAGING.destination]: topic,
      });
      for (const name of topics) {
        const count = topic ? rows.length : rows.filter((row) => row.topic === name).length;
        metrics.sent.add(count, { ...common, [MESSAGING.destination]: name });
      }
    },
  };
}

function startSendSpan(t: Tracing, rows: readonly ClaimedRow[], topic: string | undefined) {
  const { api } = t;
  const links: Link[] = [];
  for (const row of rows) {
    const creation = spanContextFromHeaders(api, row.headers);
    if (creation) links.push({ context: creation, attributes: { [MESSAGING.messageId]: row.id } });
  }
  const span = t.tracer.startSpan(
    topic ? `send ${topic}` : 'send',
    {
      kind: api.SpanKind.CLIENT,
      links,
      attributes: {
        [MESSAGING.system]: 'kafka',
        [MESSAGING.operationType]: 'send',
        [MESSAGING.operationName]: 'send',
        [MESSAGING.destination]: topic,
        [MESSAGING.batchCount]: rows.length,
      },
    },
    api.ROOT_CONTEXT,
  );
  const active = api.trace.setSpan(api.ROOT_CONTEXT, span);
  return {
    publishing: <T>(publish: () => Promise<T>) => api.context.with(active, publish),
    end(outcome: SendOutcome) {
      if ('error' in outcome) {
        span.setAttribute('eventual.relay.error_kind', outcome.kind);
        failSpan(api, span, outcome.error);
      } else {
        if (outcome.fenced > 0) span.setAttribute('eventual.relay.fenced', outcome.fenced);
        if (outcome.markError !== undefined) {
          span.setAttribute('eventual.relay.mark_failed', true);
          failSpan(api, span, outcome.markError);
        }
      }
      span.end();
    },
  };
}
