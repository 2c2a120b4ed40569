import { context, metrics, type SpanContext, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { type DataPoint, type Histogram, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
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

/** Collects on demand, as a Prometheus scrape would. */
class OnDemandReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/**
 * Registers a meter provider for the test file, read on demand, and unregisters it
 * after the file. No tracer provider: metrics need none.
 */
export function recordMetrics() {
  const reader = new OnDemandReader();
  beforeAll(() => void metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] })));
  afterAll(() => metrics.disable());
  /** The data points of metric `name` whose attributes include `attributes`. */
  const points = async (name: string, attributes: Record<string, unknown> = {}): Promise<DataPoint<unknown>[]> => {
    const { resourceMetrics } = await reader.collect();
    const metric = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
    const all = (metric?.dataPoints ?? []) as DataPoint<unknown>[];
    return all.filter((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v));
  };
  return {
    points,
    /** A counter's total over the matching points. */
    total: async (name: string, attributes: Record<string, unknown> = {}) =>
      (await points(name, attributes)).reduce((sum, p) => sum + (p.value as number), 0),
    /** A histogram's observation count over the matching points. */
    observations: async (name: string, attributes: Record<string, unknown> = {}) =>
      (await points(name, attributes)).reduce((sum, p) => sum + (p.value as Histogram).count, 0),
  };
}
