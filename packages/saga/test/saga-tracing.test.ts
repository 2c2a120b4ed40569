import { randomUUID } from 'node:crypto';
import { SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { ids, only, recordSpans } from '../../outbox/test/telemetry-support.js';
import { type SagaTopics, threeStepSaga } from './fixtures/three-step-saga.js';
import { sagaWorld } from './saga-support.js';

const world = sagaWorld('saga_tracing');
const recorder = recordSpans();
const wait = { timeout: 40_000, interval: 100 };

async function tracedWorld() {
  const topics = await world.topics();
  await Promise.all([world.participant('a', topics), world.participant('b', topics), world.participant('c', topics)]);
  const service = await world.orchestrator(topics);
  /** Starts a saga inside an active span, as the business operation that begins it would. */
  const start = (sagaId: string) =>
    recorder.tracer().startActiveSpan(`book ${sagaId}`, async (span) => {
      try {
        await service.knex.transaction((trx) =>
          service.orchestrator.start(trx, service.saga, { id: sagaId, data: { replies: [] } }),
        );
      } finally {
        span.end();
      }
    });
  return { topics, start };
}

/** The saga's step-transition spans, in the order they ended (one advance after the other). */
const transitions = (spans: ReadableSpan[], sagaId: string) =>
  spans.filter((s) => s.attributes['eventual.saga.id'] === sagaId);
const described = (s: ReadableSpan) => `${s.name} ${s.attributes['eventual.saga.outcome']}`;

/** `span`'s ancestry within `spans`, from itself up to the root, by name. */
function ancestry(spans: ReadableSpan[], span: ReadableSpan): string[] {
  const byId = new Map(spans.map((s) => [ids(s).spanId, s]));
  const names: string[] = [];
  for (let s: ReadableSpan | undefined = span; s; s = byId.get(ids(s).parent ?? '')) names.push(described(s));
  return names;
}

/** What one participant step looks like between the orchestrator's transitions, child to parent. */
const hop = (topics: SagaTopics, letter: 'a' | 'b' | 'c') => [
  `process ${topics.replies} undefined`,
  `create ${topics.replies} undefined`,
  `process ${topics[letter]} undefined`,
  `create ${topics[letter]} undefined`,
];

/** The forward transitions up to c's command, as they end. */
const upToC = [
  'step three-steps/a sent',
  'step three-steps/a succeeded',
  'step three-steps/b sent',
  'step three-steps/b succeeded',
  'step three-steps/c sent',
];

/** The ancestry from c's command up to the span that started the saga. */
const forwardToC = (topics: SagaTopics, sagaId: string) => [
  'step three-steps/c sent',
  ...hop(topics, 'b'),
  'step three-steps/b sent',
  ...hop(topics, 'a'),
  'step three-steps/a sent',
  `book ${sagaId} undefined`,
];

/**
 * Waits until every span above `sagaId`'s transition number `count` has ended and been
 * exported: a participant's `process` span ends after the transition made inside it,
 * so the transitions can all be there while the chain up to the root is not yet.
 */
async function traceSettled(sagaId: string, count: number) {
  await expect
    .poll(() => {
      const all = recorder.spans();
      const last = transitions(all, sagaId)[count - 1];
      return last ? ancestry(all, last).at(-1) : undefined;
    }, wait)
    .toBe(`book ${sagaId} undefined`);
}

describe('saga tracing', () => {
  it('traces a saga as one trace: every step transition, each participant hop, in order', async () => {
    const { topics, start } = await tracedWorld();
    const sagaId = `happy-${randomUUID()}`;
    await start(sagaId);
    await expect
      .poll(() => transitions(recorder.spans(), sagaId).map(described), wait)
      .toEqual([...upToC, 'step three-steps/c succeeded']);
    await traceSettled(sagaId, 6);
    const root = only(recorder.spans(), `book ${sagaId}`);
    const spans = recorder.spans().filter((s) => ids(s).traceId === ids(root).traceId);
    const steps = transitions(spans, sagaId);
    expect(steps).toHaveLength(6);
    // The last transition hangs, reply by command by transition, under the span that started the saga.
    expect(ancestry(spans, steps[5]!)).toEqual([
      'step three-steps/c succeeded',
      ...hop(topics, 'c'),
      ...forwardToC(topics, sagaId),
    ]);
    // A reply's transitions are siblings under its process span: b's success and c's command.
    expect(ids(steps[4]!).parent).toBe(ids(steps[3]!).parent);
    expect(steps[5]!.attributes).toEqual({
      'eventual.saga.id': sagaId,
      'eventual.saga.type': 'three-steps',
      'eventual.saga.step': 'c',
      'eventual.saga.phase': 'forward',
      'eventual.saga.outcome': 'succeeded',
      'eventual.saga.attempt': 1,
      'eventual.saga.status': 'completed',
    });
    expect(steps.map((s) => s.status.code)).toEqual(Array(6).fill(SpanStatusCode.UNSET));
  });

  it('traces the failure path: the failed step, then every compensation in reverse order, in the same trace', async () => {
    const { topics, start } = await tracedWorld();
    const sagaId = `fail3-${randomUUID()}`;
    world.plans.set(sagaId, { reject: ['c'] });
    await start(sagaId);
    await expect
      .poll(() => transitions(recorder.spans(), sagaId).map(described), wait)
      .toEqual([
        ...upToC,
        'step three-steps/c failed',
        'compensate three-steps/b sent',
        'compensate three-steps/b succeeded',
        'compensate three-steps/a sent',
        'compensate three-steps/a succeeded',
      ]);
    await traceSettled(sagaId, 10);
    const root = only(recorder.spans(), `book ${sagaId}`);
    const spans = recorder.spans().filter((s) => ids(s).traceId === ids(root).traceId);
    const steps = transitions(spans, sagaId);
    expect(steps).toHaveLength(10);
    const failed = steps[5]!;
    expect(failed.status).toEqual({ code: SpanStatusCode.ERROR, message: 'c says no' });
    expect(failed.attributes).toMatchObject({
      'eventual.saga.status': 'compensating',
      'eventual.saga.phase': 'forward',
    });
    // The failure reply itself starts the compensation: c failed and b's undo is sent in one advance.
    expect(ids(steps[6]!).parent).toBe(ids(failed).parent);
    expect(ancestry(spans, steps[9]!)).toEqual([
      'compensate three-steps/a succeeded',
      ...hop(topics, 'a'),
      'compensate three-steps/a sent',
      ...hop(topics, 'b'),
      'compensate three-steps/b sent',
      ...hop(topics, 'c'),
      ...forwardToC(topics, sagaId),
    ]);
    expect(steps[9]!.attributes).toMatchObject({
      'eventual.saga.phase': 'compensate',
      'eventual.saga.outcome': 'succeeded',
      'eventual.saga.status': 'compensated',
    });
  });

  it("continues the saga's trace when the deadline sweep acts on it, from the context the saga row kept", async () => {
    const topics = await world.topics();
    await Promise.all([world.participant('a', topics), world.participant('b', topics)]);
    const c = await world.participant('c', topics, { start: false }); // down until the sweep has acted
    const saga = threeStepSaga(topics, 'with-deadline', { afterMs: 300, onTimeout: 'retry', maxAttempts: 3 });
    const service = await world.orchestrator(topics, [saga]);
    const sagaId = `deadline-${randomUUID()}`;
    await recorder
      .tracer()
      .startActiveSpan(`book ${sagaId}`, (span) =>
        service.knex
          .transaction((trx) => service.orchestrator.start(trx, saga, { id: sagaId, data: { replies: [] } }))
          .finally(() => span.end()),
      );
    await expect
      .poll(() => transitions(recorder.spans(), sagaId).map(described), wait)
      .toEqual([
        'step with-deadline/a sent',
        'step with-deadline/a succeeded',
        'step with-deadline/b sent',
        'step with-deadline/b succeeded',
        'step with-deadline/c sent',
      ]);
    // No scheduler here: the sweep runs when the test calls it, as the cron job would once the deadline passed.
    await expect.poll(() => service.orchestrator.sweep(), wait).toBe(1);
    await c.start();
    await expect
      .poll(() => transitions(recorder.spans(), sagaId).map(described).slice(5), wait)
      .toEqual(['step with-deadline/c timed-out', 'step with-deadline/c sent', 'step with-deadline/c succeeded']);

    const root = only(recorder.spans(), `book ${sagaId}`);
    const steps = transitions(recorder.spans(), sagaId);
    expect(new Set(steps.map((s) => ids(s).traceId))).toEqual(new Set([ids(root).traceId]));
    // The sweep's transitions hang under the transition the saga was waiting on: c's first command.
    const [firstSend, timedOut, resent] = [steps[4]!, steps[5]!, steps[6]!];
    expect(ids(timedOut).parent).toBe(ids(firstSend).spanId);
    expect(ids(resent).parent).toBe(ids(firstSend).spanId);
    expect(timedOut.status.code).toBe(SpanStatusCode.ERROR);
    expect(resent.attributes).toMatchObject({ 'eventual.saga.outcome': 'sent', 'eventual.saga.attempt': 2 });
  });
});
