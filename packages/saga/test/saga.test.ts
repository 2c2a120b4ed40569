import { randomUUID } from 'node:crypto';
import { waitUntil } from '@eventual/devstack';
import { readTopics } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import { SAGA_HEADER, type SagaInstance } from '@eventual/saga';
import { describe, expect, it } from 'vitest';
import type { TripData } from './fixtures/three-step-saga.js';
import { sagaWorld } from './saga-support.js';

const world = sagaWorld('saga');

async function settled(get: () => Promise<SagaInstance | undefined>, statuses: string[], timeoutMs = 40_000) {
  return waitUntil(
    `the saga to reach ${statuses.join(' or ')}`,
    async () => {
      const saga = await get();
      return saga && statuses.includes(saga.status) ? saga : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

async function fullWorld() {
  const topics = await world.topics();
  const [a, b, c] = await Promise.all([
    world.participant('a', topics),
    world.participant('b', topics),
    world.participant('c', topics),
  ]);
  const service = await world.orchestrator(topics);
  const start = (id: string) =>
    service.knex.transaction((trx) => service.orchestrator.start(trx, service.saga, { id, data: { replies: [] } }));
  return { topics, a, b, c, ...service, start };
}

describe('saga orchestrator with three participants', () => {
  it('runs the happy path through all three participants, each step once, and completes', async () => {
    const w = await fullWorld();
    const sagaId = `happy-${randomUUID()}`;
    const started = await w.start(sagaId);
    expect(started).toMatchObject({ status: 'running', step: 'a', waiting: 'reply' });
    expect(await w.start(sagaId)).toMatchObject({ id: sagaId, status: 'running' }); // starting twice: same saga

    const done = await settled(() => w.orchestrator.get(sagaId), ['completed', 'compensated', 'failed']);
    expect(done.status).toBe('completed');
    expect((done.data as TripData).replies).toEqual(['a', 'b', 'c']);
    expect((await w.a.effects(sagaId)).map((e) => e.action)).toEqual(['do-a']);
    expect((await w.b.effects(sagaId)).map((e) => e.action)).toEqual(['do-b']);
    expect((await w.c.effects(sagaId)).map((e) => e.action)).toEqual(['do-c']);
    expect(await w.orchestrator.list({ status: 'completed' })).toEqual([expect.objectContaining({ id: sagaId })]);
  });

  it('compensates step 1 once when step 2 fails, and never reaches step 3', async () => {
    const w = await fullWorld();
    const sagaId = `fail2-${randomUUID()}`;
    world.plans.set(sagaId, { reject: ['b'] });
    const compensating: string[] = [];
    const emitters = new Set<string>();
    w.orchestrator.on('saga:compensating', (e) => compensating.push(e.reason));
    w.orchestrator.on('saga:compensating', (e) => emitters.add(e.instanceId));
    w.orchestrator.on('saga:compensated', (e) => emitters.add(e.instanceId));
    await w.start(sagaId);
    const done = await settled(() => w.orchestrator.get(sagaId), ['completed', 'compensated', 'failed']);
    expect(done.status).toBe('compensated');
    expect(done.lastError).toMatch(/step 'b' failed: b says no/);
    expect(compensating).toEqual([expect.stringMatching(/b says no/)]);
    expect([...emitters]).toEqual(['orchestrator-1']);
    expect((await w.a.effects(sagaId)).map((e) => e.action)).toEqual(['do-a', 'undo-a']);
    // b's own writes were rolled back with its rejection; c was never asked.
    expect(await w.b.effects(sagaId)).toEqual([]);
    expect(await w.c.effects(sagaId)).toEqual([]);
  });

  it('compensates step 2 then step 1, in that order and each exactly once, when step 3 fails', async () => {
    const w = await fullWorld();
    const sagaId = `fail3-${randomUUID()}`;
    world.plans.set(sagaId, { reject: ['c'] });
    await w.start(sagaId);
    const done = await settled(() => w.orchestrator.get(sagaId), ['completed', 'compensated', 'failed']);
    expect(done.status).toBe('compensated');
    const a = await w.a.effects(sagaId);
    const b = await w.b.effects(sagaId);
    expect(a.map((e) => e.action)).toEqual(['do-a', 'undo-a']);
    expect(b.map((e) => e.action)).toEqual(['do-b', 'undo-b']);
    expect(await w.c.effects(sagaId)).toEqual([]);
    // One clock (the same PostgreSQL server): b was undone before a.
    expect(b[1]!.at.getTime()).toBeLessThanOrEqual(a[1]!.at.getTime());
    const undoOrder = done.history
      .filter((h) => h.phase === 'compensate' && h.event === 'succeeded')
      .map((h) => h.step);
    expect(undoOrder).toEqual(['b', 'a']);
  });

  it('ignores duplicate and reordered replies: nothing advances or compensates twice', async () => {
    const w = await fullWorld();
    const sagaId = `dup-${randomUUID()}`;
    const replies = await readTopics(world.fixture.services.kafkaBrokers, [w.topics.replies]);
    world.fixture.defer(() => replies.stop());
    const ignored: string[] = [];
    w.orchestrator.on('saga:replyIgnored', (e) => ignored.push(e.reason));
    await w.start(sagaId);
    const first = await settled(() => w.orchestrator.get(sagaId), ['completed']);
    const ours = await replies.waitFor(
      'the three replies',
      (r) => r.filter((x) => x.headers[SAGA_HEADER.id] === sagaId).length >= 3,
    );
    const [replyA, replyB] = ours.filter((x) => x.headers[SAGA_HEADER.id] === sagaId);

    // The same reply again (a relay republish: same message id) and copies with new
    // ids (a participant answering twice), out of order: b's before a's.
    const again = (r: typeof replyA, id: string) => ({
      key: r!.key,
      value: r!.value,
      headers: { ...r!.headers, [HEADER.id]: id },
    });
    await world.fixture.produceRaw(w.topics.replies, [
      again(replyB, replyB!.headers[HEADER.id]!),
      again(replyB, randomUUID()),
      again(replyA, randomUUID()),
    ]);
    await waitUntil('the orchestrator to look at the copies', async () => (ignored.length >= 2 ? true : undefined), {
      timeoutMs: 20_000,
    });

    const after = await w.orchestrator.get(sagaId);
    expect(after).toMatchObject({ status: 'completed', version: first.version });
    expect(ignored).toEqual([expect.stringMatching(/saga is completed/), expect.stringMatching(/saga is completed/)]);
    expect((await w.a.effects(sagaId)).map((e) => e.action)).toEqual(['do-a']);
    expect((await w.b.effects(sagaId)).map((e) => e.action)).toEqual(['do-b']);
  });

  it('puts a saga whose compensation keeps failing in failed, visibly, and resume() finishes it after a fix', async () => {
    const w = await fullWorld();
    const sagaId = `stuck-${randomUUID()}`;
    world.plans.set(sagaId, { reject: ['c'], undoFails: ['a'] });
    const failed: string[] = [];
    w.orchestrator.on('saga:failed', (e) => failed.push(`${e.sagaId}:${e.step}`));
    await w.start(sagaId);
    // Retries of a's compensation are due after a backoff: the sweeper sends them.
    const stuck = await waitUntil(
      'the saga to fail',
      async () => {
        await w.orchestrator.sweep();
        const saga = await w.orchestrator.get(sagaId);
        return saga?.status === 'failed' ? saga : undefined;
      },
      { timeoutMs: 40_000, intervalMs: 100 },
    );
    expect(stuck).toMatchObject({ status: 'failed', step: 'a', waiting: null });
    expect(stuck.lastError).toMatch(/compensation of step 'a' failed \(attempt 3\): a cannot undo yet/);
    expect(failed).toEqual([`${sagaId}:a`]);
    expect(await w.orchestrator.list({ status: 'failed' })).toEqual([expect.objectContaining({ id: sagaId })]);
    expect((await w.b.effects(sagaId)).map((e) => e.action)).toEqual(['do-b', 'undo-b']);
    await expect(w.orchestrator.resume(`no-such-${sagaId}`)).rejects.toThrow(/no saga with id/);

    world.fix(sagaId, 'a');
    const resumed = await w.orchestrator.resume(sagaId);
    expect(resumed.status).toBe('compensating');
    const done = await settled(() => w.orchestrator.get(sagaId), ['compensated', 'failed']);
    expect(done.status).toBe('compensated');
    expect((await w.a.effects(sagaId)).map((e) => e.action)).toEqual(['do-a', 'undo-a']);
    await expect(w.orchestrator.resume(sagaId)).rejects.toThrow(/only a failed saga can be resumed/);
  });
});
