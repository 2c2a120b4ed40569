/*
 * The outbox's spans (OpenTelemetry messaging conventions): `create {topic}` per message
 * at enqueue/prepare, whose context is the message's creation context, written into
 * its headers and so stored with the row and published as is; `send {topic}` per relay
 * batch, linked to each message's creation context. Without a registered tracer
 * provider none of this runs (see core's telemetry.ts).
 */

import { failSpan, MESSAGING, spanContextFromHeaders, type Tracing, traceHeaders, tracing } from '@eventual/core';
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

/** The `send` span of one relay batch. */
export interface SendSpan {
  /** Runs the publish with the span active, so a client instrumentation's spans are its children. */
  publishing<T>(publish: () => Promise<T>): Promise<T>;
  /** Ends it: published (`fenced` rows could not be marked), or failed with the publish error's kind. */
  end(outcome: { fenced: number } | { error: unknown; kind: string }): void;
}

/**
 * Starts a `send {topic}` span (CLIENT: the messages' own creation contexts are their
 * `create` spans) for a claimed batch: a new trace, never a child of whatever was
 * active when the relay started, with `messaging.batch.message_count` and a link to
 * each message's creation context (read from its headers, as stored at enqueue).
 */
export function startSendSpan(rows: readonly ClaimedRow[]): SendSpan | undefined {
  const t = tracing(TRACER);
  if (!t) return undefined;
  const { api } = t;
  const topics = new Set(rows.map((row) => row.topic));
  const topic = topics.size === 1 ? rows[0]!.topic : undefined;
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
    publishing: (publish) => api.context.with(active, publish),
    end(outcome) {
      if ('error' in outcome) {
        span.setAttribute('eventual.relay.error_kind', outcome.kind);
        failSpan(api, span, outcome.error);
      } else if (outcome.fenced > 0) {
        span.setAttribute('eventual.relay.fenced', outcome.fenced);
      }
      span.end();
    },
  };
}
