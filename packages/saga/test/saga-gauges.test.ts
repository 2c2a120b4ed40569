import { randomUUID } from 'node:crypto';
import { InvalidOptionError } from '@eventual/core';
import { waitUntil } from '@eventual/devstack';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { observeSagaGauges } from '@eventual/saga';
import { describe, expect, it } from 'vitest';
import { recordMetrics } from '../../outbox/test/telemetry-support.js';
import { threeStepSaga } from './fixtures/three-step-saga.js';
import { sagaWorld } from './saga-support.js';

const world = sagaWorld('saga_gauges');
const { points } = recordMetrics();

/** `name`'s value per `type/status`, as the reader collects it now. */
async function gauge(name: string): Promise<Record<string, number>> {
  const found = await points(name);
  return Object.fromEntries(
    found.map((p) => [
      `${p.attributes['eventual.saga.type']}/${p.attributes['eventual.saga.status']}`,
      p.value as number,
    ]),
  );
}

describe('saga gauges', () => {
  it('counts unsettled sagas per type and status as the saga rows say, and a resumed failed saga drops to 0', async () => {
    const topics = await world.topics();
    await Promise.all([world.participant('a', topics), world.participant('b', topics), world.participant('c', topics)]);
    // A saga type whose first participant is not running: its sagas stay running at step a.
    const nobody = randomTopic('cmd-nobody');
    await createTopics(world.fixture.services.kafkaBrokers, [nobody], 1);
    const parked = threeStepSaga({ ...topics, a: nobody }, 'parked');
    const w = await world.orchestrator(topics, [parked]);
    const stop = observeSagaGauges(w.orchestrator, { intervalMs: 0 });
    world.fixture.defer(async () => stop());
    const start = (saga: typeof parked, id: string) =>
      w.knex.transaction((trx) => w.orchestrator.start(trx, saga, { id, data: { replies: [] } }));

    const stuckId = `stuck-${randomUUID()}`;
    world.plans.set(stuckId, { reject: ['c'], undoFails: ['a'] });
    const doneId = `done-${randomUUID()}`;
    await start(w.saga, stuckId);
    await start(w.saga, doneId);
    await start(parked, `parked-${randomUUID()}`);
    await start(parked, `parked-${randomUUID()}`);
    await waitUntil(
      'one saga failed and the other completed',
      async () => {
        await w.orchestrator.sweep(); // sends the compensation retries that are due
        const [stuck, done] = [await w.orchestrator.get(stuckId), await w.orchestrator.get(doneId)];
        return stuck?.status === 'failed' && done?.status === 'completed' ? true : undefined;
      },
      { timeoutMs: 40_000, intervalMs: 100 },
    );

    const counted = await gauge('eventual.sagas');
    expect(counted).toEqual({ 'parked/running': 2, 'three-steps/failed': 1 }); // settled sagas are not gauged
    const rows = await w
      .knex('eventual.sagas')
      .whereIn('status', ['running', 'compensating', 'failed'])
      .select('type', 'status');
    expect(rows.length).toBe(3);
    const ages = await gauge('eventual.saga.oldest.age');
    expect(Object.keys(ages).sort()).toEqual(['parked/running', 'three-steps/failed']);
    expect(Object.values(ages).every((age) => age > 0)).toBe(true);

    world.fix(stuckId, 'a');
    await w.orchestrator.resume(stuckId);
    await waitUntil(
      'the resumed saga to be compensated',
      async () => ((await w.orchestrator.get(stuckId))?.status === 'compensated' ? true : undefined),
      { timeoutMs: 40_000, intervalMs: 100 },
    );
    expect(await gauge('eventual.sagas')).toEqual({ 'parked/running': 2, 'three-steps/failed': 0 });
  });

  it('refuses what is not an orchestrator', () => {
    expect(() => observeSagaGauges({} as never)).toThrow(InvalidOptionError);
  });
});
