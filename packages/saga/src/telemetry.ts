/*
 * The orchestrator's spans: one per step transition (each history entry a transition
 * appends: a command sent, a reply that succeeded or failed, a local action that ran, a
 * deadline that passed, a resume), named `step <saga>/<step>` going forward and
 * `compensate <saga>/<step>` undoing, so compensations stand out in a trace. They are
 * children of the span active where the saga advanced: the caller's at `start`, the
 * reply's `process` span otherwise, so with the participants' spans a saga is one
 * trace. The command a transition sends is enqueued inside its `sent` span. The saga
 * row keeps the last transition's context, so the sweep (deadlines, retries), which
 * runs on the scheduler, continues the saga's trace instead of starting one. Without
 * a registered tracer provider none of this runs (see core's telemetry.ts).
 */

import { failSpan, spanContextFromHeaders, type TelemetryApi, traceHeaders, tracing } from '@eventual/core';
import type { Span } from '@opentelemetry/api';
import type { SagaHistoryEntry, SagaState } from './state.js';

const TRACER = '@eventual/saga';

/** The spans of one advance of one saga, ended once its row is saved. */
export interface TransitionSpans {
  /** Runs `enqueue` inside the span of the transition that sent the command. */
  sending<T>(enqueue: () => Promise<T>): Promise<T>;
  /** Ends every span, failed with `error` if the advance did not save. */
  end(error?: unknown): void;
  /** The W3C headers (JSON) of the last transition's span: what the saga row keeps for a later sweep. */
  traceContext(): string;
}

/**
 * Starts a span per entry in `logged`, at the entry's time, for the saga `state` after
 * the advance; undefined when tracing is off or nothing was logged. `stored`, for a
 * sweep (whose active context is the scheduler's, not the saga's): the trace context
 * the saga row kept from its last traced transition, the parent (null: a new trace).
 */
export function startTransitionSpans(
  state: SagaState,
  logged: readonly SagaHistoryEntry[],
  stored: string | null | undefined,
): TransitionSpans | undefined {
  if (logged.length === 0) return undefined;
  const t = tracing(TRACER);
  if (!t) return undefined;
  const { api } = t;
  const parent = stored === undefined ? api.context.active() : storedContext(api, stored);
  const spans: Span[] = logged.map((entry) =>
    t.tracer.startSpan(
      `${entry.phase === 'compensate' ? 'compensate' : 'step'} ${state.type}/${entry.step}`,
      {
        kind: api.SpanKind.INTERNAL,
        startTime: new Date(entry.at),
        attributes: {
          'eventual.saga.id': state.id,
          'eventual.saga.type': state.type,
          'eventual.saga.step': entry.step,
          'eventual.saga.phase': entry.phase,
          'eventual.saga.outcome': entry.event,
          'eventual.saga.attempt': entry.attempt,
          'eventual.saga.status': state.status,
        },
      },
      parent,
    ),
  );
  logged.forEach((entry, i) => {
    if (entry.event === 'failed' || entry.event === 'timed-out')
      spans[i]!.setStatus({ code: api.SpanStatusCode.ERROR, message: entry.detail ?? entry.event });
  });
  const sent = logged.findLastIndex((entry) => entry.event === 'sent');
  return {
    sending: (enqueue) => (sent < 0 ? enqueue() : api.context.with(api.trace.setSpan(parent, spans[sent]!), enqueue)),
    end(error) {
      for (const span of spans) {
        if (error !== undefined) failSpan(api, span, error);
        span.end();
      }
    },
    traceContext: () => JSON.stringify(traceHeaders(spans.at(-1)!.spanContext())),
  };
}

/** The context a saga row kept, as a parent; the root when there is none or it does not parse. */
function storedContext(api: TelemetryApi, stored: string | null) {
  let headers: unknown;
  try {
    headers = stored === null ? null : JSON.parse(stored);
  } catch {
    return api.ROOT_CONTEXT;
  }
  const span =
    headers !== null && typeof headers === 'object'
      ? spanContextFromHeaders(api, headers as Record<string, string>)
      : undefined;
  return span ? api.trace.setSpanContext(api.ROOT_CONTEXT, span) : api.ROOT_CONTEXT;
}
