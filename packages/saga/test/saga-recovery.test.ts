import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { waitUntil } from '@eventual/devstack';
import { createScheduler } from '@eventual/outbox';
import { createSagaOrchestrator, SAGA_REPLY_TYPE } from '@eventual/saga';
import { describe, expect, it } from 'vitest';
import { threeStepSaga } from './fixtures/three-step-saga.js';
import { sagaWorld } from './saga-support.js';
import { uniqueName } from './support.js';

const world = sagaWorld('sagarecovery');

describe('saga recovery', () => {
  it('applies the deadline policy when a participant is down: retries the command, then compensates, and converges once it is back', async () => {
    const topics = await world.topics();
    const a = await world.participant('a', topics);
    const b = await world.participant('b', topics);
    const c = await world.participant('c', topics, { start: false }); // down
    const { knex, outbox } = await world.fixture.service();
    const saga = threeStepSaga(topics, 'with-deadline', { afterMs: 1_500, onTimeout: 'retry', maxAttempts: 2 });
    const orchestrator = createSagaOrchestrator({
      knex,
      outbox,
      replyTopic: topics.replies,
      sagas: [saga],
      maxCompensationAttempts: 20,
      retryBackoff: { initialMs: 50, maxMs: 100 },
    });
    await orchestrator.migrate();
    const consumer = await world.fixture.consumer({
      outbox,
      name: uniqueName('orchestrator'),
      topics: [topics.replies],
    });
    consumer.handle(SAGA_REPLY_TYPE, orchestrator.replyHandler);
    await world.fixture.relay(outbox).start();
    await consumer.start();
    // Deadlines are swept by node-cron once per cluster (orchestrator.jobs, every second by default).
    const scheduler = createScheduler(outbox, {
      schedules: { checkback: false, cleanup: false, sweep: false, 'lease-recovery': false },
      jobs: orchestrator.jobs,
    });
    scheduler.start();
    world.fixture.defer(() => scheduler.stop());

    const sagaId = `deadline-${randomUUID()}`;
    await knex.transaction((trx) => orchestrator.start(trx, saga, { id: sagaId, data: { replies: [] } }));
    const compensating = await waitUntil(
      'the deadline policy to give up on c',
      async () => {
        const s = await orchestrator.get(sagaId);
        return s?.status === 'compensating' ? s : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const cHistory = compensating.history.filter((h) => h.step === 'c' && h.phase === 'forward').map((h) => h.event);
    expect(cHistory).toEqual(['sent', 'timed-out', 'sent', 'timed-out']);
    expect(compensating.lastError).toMatch(/step 'c' got no reply within 1500 ms/);

    // c comes back: it sees its two commands and the undo, in order, on one partition.
    await c.start();
    const done = await waitUntil(
      'the saga to settle',
      async () => {
        const s = await orchestrator.get(sagaId);
        return s?.status === 'compensated' || s?.status === 'failed' ? s : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    expect(done.status).toBe('compensated');
    // c acted once (the retried command replayed its stored reply) and was undone once,
    // because its outcome was unknown when the saga gave up on it.
    expect((await c.effects(sagaId)).map((e) => e.action)).toEqual(['do-c', 'undo-c']);
    expect((await b.effects(sagaId)).map((e) => e.action)).toEqual(['do-b', 'undo-b']);
    expect((await a.effects(sagaId)).map((e) => e.action)).toEqual(['do-a', 'undo-a']);
  });

  it('resumes a saga after the orchestrator process was killed mid-saga, with the same outcome', async () => {
    const topics = await world.topics();
    const [a, b, c] = await Promise.all([
      world.participant('a', topics),
      world.participant('b', topics),
      world.participant('c', topics),
    ]);
    const { url, knex } = await world.fixture.service();
    const name = uniqueName('orchestrator');
    const script = fileURLToPath(new URL('./fixtures/orchestrator-process.ts', import.meta.url));
    const spawn = () => {
      const child: ChildProcess = fork(
        script,
        [url, world.fixture.services.kafkaBrokers.join(','), JSON.stringify(topics), name],
        {
          execArgv: ['--import', 'tsx'],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        },
      );
      const seen: string[] = [];
      child.on('message', (m) => seen.push((m as { event: string }).event));
      world.fixture.defer(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      const ready = waitUntil(
        'the orchestrator process to be ready',
        async () => (seen.includes('ready') ? true : undefined),
        { timeoutMs: 60_000 },
      );
      return { child, seen, ready };
    };

    const sagaId = `crash-${randomUUID()}`;
    const first = spawn();
    await first.ready;
    first.child.send({ start: sagaId });
    // Kill it as soon as the saga is past step a and waiting on b.
    const sagaRow = () => knex.withSchema('eventual').table('sagas').where({ id: sagaId }).first();
    await waitUntil('the saga to reach step b', async () => ((await sagaRow())?.step === 1 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 20,
    });
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));

    const second = spawn();
    await second.ready;
    const done = await waitUntil(
      'the saga to complete after the restart',
      async () => {
        const row = await sagaRow();
        return row?.status === 'completed' ? row : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    expect(done.data.replies).toEqual(['a', 'b', 'c']);
    expect((await a.effects(sagaId)).map((e) => e.action)).toEqual(['do-a']);
    expect((await b.effects(sagaId)).map((e) => e.action)).toEqual(['do-b']);
    expect((await c.effects(sagaId)).map((e) => e.action)).toEqual(['do-c']);
  });
});
