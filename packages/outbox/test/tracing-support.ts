import { context, type SpanContext, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll } from 'vitest';

/**
 * Registers an OpenTelemetry SDK for the test file (a tracer provider exporting to
 * memory, and the AsyncLocalStorage context manager a Node.js SDK installs), and
 * unregisters it after the file; each test file runs in its own process.
 */
export function recordSpans() {
  const exporter = new InMemorySpanExporter();
  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  });
  afterAll(() => {
    trace.disable();
    context.disable();
  });
  return {
    tracer: () => trace.getTracer('test'),
    spans: () => exporter.getFinishedSpans(),
    reset: () => exporter.reset(),
  };
}

/** The span's id, its parent's (undefined for a root) and its trace's. */
export const ids = (span: ReadableSpan) => ({
  traceId: span.spanContext().traceId,
  spanId: span.spanContext().spanId,
  parent: span.parentSpanContext?.spanId,
});

/** The one finished span named `name` (of `trace` when given); fails if there are none or several. */
export function only(spans: ReadableSpan[], name: string, traceId?: string): ReadableSpan {
  const found = spans.filter((s) => s.name === name && (traceId === undefined || s.spanContext().traceId === traceId));
  if (found.length !== 1)
    throw new Error(`expected one span '${name}', found ${found.length}: ${spans.map((s) => s.name).join(', ')}`);
  return found[0]!;
}

/** The W3C traceparent of a span context, as eventual writes it into message headers. */
export const traceparentOf = (span: SpanContext) =>
  `00-${span.traceId}-${span.spanId}-${span.traceFlags.toString(16).padStart(2, '0')}`;
