import { createRequire } from 'node:module';
import { createTopics, randomTopic, readTopics } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import { propagation, SpanKind } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { KafkaJsInstrumentation } from '@opentelemetry/instrumentation-kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';
import { ids, only, recordSpans, traceparentOf } from './telemetry-support.js';

const fixture = outboxFixture('otel_kafkajs');
const recorder = recordSpans();
let instrumentation: KafkaJsInstrumentation;

beforeAll(() => {
  // What an application with the Node.js SDK and auto-instrumentation has: the W3C
  // propagator and kafkajs patched, injecting its own send span into every record.
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  instrumentation = new KafkaJsInstrumentation();
  // kafkajs is already loaded (the devstack helpers import it): requiring it again
  // through the instrumentation's hook patches the one shared module.
  createRequire(import.meta.url)('kafkajs');
});
afterAll(() => {
  instrumentation.disable();
  propagation.disable();
});

describe('with @opentelemetry/instrumentation-kafkajs active', () => {
  it("publishes the message's own creation context, not the instrumentation's send span", async () => {
    const { knex, outbox } = await fixture.database();
    const topic = randomTopic('orders');
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const reader = await readTopics(fixture.services.kafkaBrokers, [topic]);
    fixture.defer(() => reader.stop());
    await fixture.relay(outbox).start();

    const placed = await recorder
      .tracer()
      .startActiveSpan('checkout', async (span) =>
        knex
          .transaction((trx) => outbox.enqueue(trx, { topic, key: 'order-1', type: 'OrderPlaced', payload: {} }))
          .finally(() => span.end()),
      );
    const [record] = await reader.waitForCount(1);
    await expect
      .poll(() => recorder.spans().some((s) => s.name === `send ${topic}` && s.kind === SpanKind.CLIENT))
      .toBe(true);

    const spans = recorder.spans();
    const create = only(spans, `create ${topic}`);
    const relaySend = spans.find((s) => s.name === `send ${topic}` && s.kind === SpanKind.CLIENT)!;
    // The instrumentation really was at work: its own send span, under the relay's.
    const instrumented = spans.filter(
      (s) => s.instrumentationScope.name === '@opentelemetry/instrumentation-kafkajs' && s.kind === SpanKind.PRODUCER,
    );
    expect(instrumented.map((s) => ids(s).parent)).toEqual([ids(relaySend).spanId]);
    // ...and yet the record carries the create span, as stored with the row.
    expect(record!.headers[HEADER.traceparent]).toBe(traceparentOf(create.spanContext()));
    expect(record!.headers[HEADER.traceparent]).toBe(placed.headers[HEADER.traceparent]);
    expect(record!.headers).not.toHaveProperty(HEADER.tracestate);
  });
});
