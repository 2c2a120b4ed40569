/*
 * OpenTelemetry, optionally (traces, and metrics through `instruments`). `@opentelemetry/api` is an optional peer dependency: it is
 * loaded on first use, once, and when it is not installed, or installed without a
 * tracer provider registered, `tracing()` says so and the packages do nothing at all
 * (one identity check per call: no span objects, no context lookups, no allocations).
 *
 * Loaded with require, not `import()`: the hot path (enqueue) asks synchronously, and
 * the API keeps its registrations (tracer provider, context manager) on a global
 * shared by every copy of it, so the copy loaded here sees an SDK registered through
 * the application's own ESM import of the API.
 */

import { createRequire } from 'node:module';
import type * as OtelApi from '@opentelemetry/api';

/** The OpenTelemetry API module, as eventual uses it. */
export type TelemetryApi = typeof OtelApi;

/** The API and a tracer, handed out only while a tracer provider is registered. */
export interface Tracing {
  /** The `@opentelemetry/api` module. */
  api: TelemetryApi;
  /** The tracer of the asking package (`@eventual/outbox`, ...). */
  tracer: OtelApi.Tracer;
}

/** W3C trace context headers, as eventual writes them on every message of a traced producer. */
export const TRACE_HEADER = { traceparent: 'traceparent', tracestate: 'tracestate' } as const;

/**
 * The OpenTelemetry messaging attribute names eventual sets (semantic conventions for
 * messaging spans, the current names: `messaging.operation.type`, not the older
 * `messaging.operation`; `messaging.consumer.group.name`, not `messaging.kafka.consumer.group`).
 */
export const MESSAGING = {
  system: 'messaging.system',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  destination: 'messaging.destination.name',
  partition: 'messaging.destination.partition.id',
  consumerGroup: 'messaging.consumer.group.name',
  offset: 'messaging.kafka.offset',
  key: 'messaging.kafka.message.key',
  messageId: 'messaging.message.id',
  conversationId: 'messaging.message.conversation_id',
  batchCount: 'messaging.batch.message_count',
} as const;

interface Loaded {
  api: TelemetryApi;
  /** The API's no-op provider: the global provider's delegate until an SDK registers one. */
  noop: OtelApi.TracerProvider;
}

let loaded: Loaded | null | undefined;

function load(): Loaded | null {
  try {
    const api = createRequire(import.meta.url)('@opentelemetry/api') as TelemetryApi;
    return { api, noop: new api.ProxyTracerProvider().getDelegate() };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    // Not installed: tracing is simply off. Anything else (a broken install) is a
    // fault the user must see, not a silent loss of every trace.
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') return null;
    throw error;
  }
}

/**
 * The API and `tracerName`'s tracer when `@opentelemetry/api` is installed and a tracer
 * provider is registered; undefined otherwise, and then the caller does nothing.
 */
export function tracing(tracerName: string): Tracing | undefined {
  if (loaded === undefined) loaded = load();
  if (loaded === null) return undefined;
  const provider = loaded.api.trace.getTracerProvider() as OtelApi.TracerProvider & {
    getDelegate?: () => OtelApi.TracerProvider;
  };
  const delegate = provider.getDelegate?.() ?? provider;
  if (delegate === loaded.noop) return undefined;
  return { api: loaded.api, tracer: provider.getTracer(tracerName) };
}

/**
 * A package's instruments, made by `create` from `meterName`'s meter, once per
 * registered meter provider: the function it returns gives them while a meter
 * provider is registered, and undefined (after one lookup) while none is, or the API
 * is not installed. Metrics need no context: the tracer provider plays no part.
 */
export function instruments<T extends object>(
  meterName: string,
  create: (meter: OtelApi.Meter, api: TelemetryApi) => T,
): () => T | undefined {
  const made = new WeakMap<object, T | null>();
  let noopMeter: (new (...args: never[]) => unknown) | undefined;
  return () => {
    if (loaded === undefined) loaded = load();
    if (loaded === null) return undefined;
    const { api } = loaded;
    const provider = api.metrics.getMeterProvider();
    let found = made.get(provider);
    if (found === undefined) {
      // The API's no-op provider is not exported: it is the one whose meters are no-op meters.
      noopMeter ??= api.createNoopMeter().constructor as new (...args: never[]) => unknown;
      const meter = provider.getMeter(meterName);
      found = meter.constructor === noopMeter ? null : create(meter, api);
      made.set(provider, found);
    }
    return found ?? undefined;
  };
}

/** A counter of messages (unit `{message}`), for `instruments`. */
export function messageCounter(meter: OtelApi.Meter, name: string, description: string): OtelApi.Counter {
  return meter.createCounter(name, { unit: '{message}', description });
}

/**
 * A duration histogram in seconds with the explicit bucket boundaries the messaging
 * conventions give theirs, for `instruments`.
 */
export function durationHistogram(meter: OtelApi.Meter, name: string, description: string): OtelApi.Histogram {
  return meter.createHistogram(name, {
    unit: 's',
    description,
    advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] },
  });
}

/** A span context as the W3C `traceparent` (and `tracestate`, when it has one) headers. */
export function traceHeaders(span: OtelApi.SpanContext): Record<string, string> {
  const flags = (span.traceFlags & 0xff).toString(16).padStart(2, '0');
  const headers: Record<string, string> = {
    [TRACE_HEADER.traceparent]: `00-${span.traceId}-${span.spanId}-${flags}`,
  };
  const state = span.traceState?.serialize();
  if (state) headers[TRACE_HEADER.tracestate] = state;
  return headers;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The remote span context the W3C headers of a message carry (its creation context),
 * or undefined when there is none or it is malformed: a bad header loses the link to
 * the producer's trace, never the message.
 */
export function spanContextFromHeaders(
  api: TelemetryApi,
  headers: Readonly<Record<string, string>>,
): OtelApi.SpanContext | undefined {
  const match = TRACEPARENT.exec(headers[TRACE_HEADER.traceparent] ?? '');
  // Version ff is invalid; a later version may append fields (W3C trace context, 4.3).
  if (!match || match[1] === 'ff' || (match[1] === '00' && match[5] !== undefined)) return undefined;
  const state = headers[TRACE_HEADER.tracestate];
  const span: OtelApi.SpanContext = {
    traceId: match[2]!,
    spanId: match[3]!,
    traceFlags: Number.parseInt(match[4]!, 16),
    isRemote: true,
    ...(state ? { traceState: api.createTraceState(state) } : {}),
  };
  return api.isSpanContextValid(span) ? span : undefined;
}

/** Marks `span` failed with `error` (recorded as an exception event); the caller still ends it. */
export function failSpan(api: TelemetryApi, span: OtelApi.Span, error: unknown): void {
  const e = error instanceof Error ? error : new Error(String(error));
  span.recordException(e);
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: e.message });
}

/** An observable gauge `observeGauges` creates. */
export interface GaugeSpec {
  /** Its OpenTelemetry name (`eventual.outbox.pending`). */
  name: string;
  /** Its unit (`s`, `{message}`). */
  unit: string;
  /** What it measures. */
  description: string;
}

/** One value a gauge read gives: of which gauge, and with which (low-cardinality) attributes. */
export interface GaugeReading<K extends string> {
  /** The key of the gauge in the specs. */
  gauge: K;
  /** Its value now. */
  value: number;
  /** Its attributes: topic, consumer, saga type; never ids or keys. */
  attributes: OtelApi.Attributes;
}

/** How `observeGauges` reads. */
export interface GaugeReadOptions {
  /**
   * A read is reused by every collection within this many ms of it (several readers,
   * or a scrape storm, cost one query); 0 reads at every collection.
   */
  intervalMs: number;
  /** Told when a read fails; the collection then reports nothing for these gauges. */
  onError(error: unknown): void;
}

/**
 * Observable gauges on `meterName`'s meter, all fed by one `read` per collection (one
 * callback for the batch: one query serves every gauge of a table), reused for
 * `intervalMs`. A series read once and missing from a later read (the last dead
 * message of a topic requeued) is reported as 0, not left to go stale. Returns the
 * function that unregisters them; without a registered meter provider nothing is
 * registered and it does nothing, so register the SDK before starting the parts.
 */
export function observeGauges<K extends string>(
  meterName: string,
  specs: Readonly<Record<K, GaugeSpec>>,
  read: () => Promise<Array<GaugeReading<K>>>,
  options: GaugeReadOptions,
): () => void {
  if (loaded === undefined) loaded = load();
  if (loaded === null) return () => {};
  const meter = loaded.api.metrics.getMeterProvider().getMeter(meterName);
  if (meter.constructor === loaded.api.createNoopMeter().constructor) return () => {};
  const keys = Object.keys(specs) as K[];
  const gauges = new Map(
    keys.map((k) => [
      k,
      meter.createObservableGauge(specs[k].name, { unit: specs[k].unit, description: specs[k].description }),
    ]),
  );
  let last: { at: number; readings: Promise<Array<GaugeReading<K>> | undefined> } | undefined;
  const seen = new Map<string, { gauge: K; attributes: OtelApi.Attributes }>();
  const callback: OtelApi.BatchObservableCallback = async (observer) => {
    const now = Date.now();
    if (!last || now - last.at >= options.intervalMs) {
      // A failed read is reported once and cached like a good one: an outage costs one query per interval too.
      const readings = read().catch((error: unknown) => {
        options.onError(error);
        return undefined;
      });
      last = { at: now, readings };
    }
    const readings = await last.readings;
    if (!readings) return;
    const current = new Set<string>();
    for (const r of readings) {
      const id = `${r.gauge}\u0000${JSON.stringify(Object.entries(r.attributes).sort(([a], [b]) => a.localeCompare(b)))}`;
      current.add(id);
      seen.set(id, { gauge: r.gauge, attributes: r.attributes });
      observer.observe(gauges.get(r.gauge)!, r.value, r.attributes);
    }
    for (const [id, s] of seen) if (!current.has(id)) observer.observe(gauges.get(s.gauge)!, 0, s.attributes);
  };
  const observables = [...gauges.values()];
  meter.addBatchObservableCallback(callback, observables);
  return () => meter.removeBatchObservableCallback(callback, observables);
}
