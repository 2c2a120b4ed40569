import { createTopics, randomTopic, readTopics } from '@eventual/devstack/testing';
import {
  type CheckAnswer,
  createOutbox,
  createScheduler,
  HEADER,
  type Message,
  PreparedMessageResolvedError,
} from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('checkback');

async function setup(
  options: { maxChecks?: number; defaultResolution?: 'commit' | 'rollback'; checkAfterMs?: number } = {},
) {
  const { knex } = await fixture.database(1);
  const outbox = createOutbox({
    knex,
    checkBack: {
      checkAfterMs: options.checkAfterMs ?? 0,
      maxChecks: options.maxChecks ?? 15,
      defaultResolution: options.defaultResolution ?? 'rollback',
      backoff: { initialMs: 100, maxMs: 100, jitter: 0 },
    },
  });
  const topic = randomTopic('payments');
  const asked: Message[] = [];
  let answer: (m: Message) => CheckAnswer = () => 'unknown';
  const unregister = outbox.registerChecker({ topic }, (m) => {
    asked.push(m);
    return answer(m);
  });
  const scheduler = createScheduler(outbox, {
    schedules: { checkback: false, cleanup: false, sweep: false, 'lease-recovery': false },
  });
  const state = async (id: string) =>
    (await knex('eventual.outbox').where({ id }).first()) as {
      state: string;
      check_count: number;
      resolved_by: string | null;
      next_check_at: Date | null;
    };
  return {
    knex,
    outbox,
    topic,
    asked,
    scheduler,
    state,
    unregister,
    answerWith: (f: (m: Message) => CheckAnswer) => (answer = f),
  };
}

describe('prepared messages and the check-back', () => {
  it('never checks a message its producer committed, and publishes it', async () => {
    const { outbox, topic, asked, scheduler, state } = await setup();
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const prepared = await outbox.prepare({ topic, key: 'pay-1', type: 'PaymentCaptured', payload: { amount: 10 } });
    expect((await state(prepared.id)).state).toBe('prepared');
    await outbox.commit(prepared.id);
    await outbox.commit(prepared.id); // idempotent
    await scheduler.runNow('checkback');
    expect(asked).toEqual([]);
    expect(await state(prepared.id)).toMatchObject({ state: 'pending', resolved_by: 'producer' });

    const reader = await readTopics(fixture.services.kafkaBrokers, [topic]);
    fixture.defer(() => reader.stop());
    await fixture.relay(outbox).start();
    const [record] = await reader.waitForCount(1);
    expect(record?.headers[HEADER.id]).toBe(prepared.id);
  });

  it('asks the checker about a message whose producer crashed before resolving it, and applies its answer', async () => {
    const { outbox, topic, asked, scheduler, state, answerWith } = await setup();
    // The producer "crashed" after prepare(): neither commit() nor rollback() ever comes.
    const charged = await outbox.prepare({ topic, key: 'pay-2', type: 'PaymentCaptured', payload: { ref: 'gw-ok' } });
    const declined = await outbox.prepare({
      topic,
      key: 'pay-3',
      type: 'PaymentCaptured',
      payload: { ref: 'gw-none' },
    });
    answerWith((m) => ((m.payload as { ref: string }).ref === 'gw-ok' ? 'commit' : 'rollback'));
    const resolved: string[] = [];
    outbox.on('checkback:resolved', ({ messageId, resolution }) => resolved.push(`${messageId}:${resolution}`));

    expect(await scheduler.runNow('checkback')).toBe(2);
    expect(asked.map((m) => m.id).sort()).toEqual([charged.id, declined.id].sort());
    expect(await state(charged.id)).toMatchObject({ state: 'pending', resolved_by: 'checkback' });
    expect(await state(declined.id)).toMatchObject({ state: 'cancelled', resolved_by: 'checkback' });
    expect(resolved.sort()).toEqual([`${charged.id}:commit`, `${declined.id}:rollback`].sort());

    // A resolution is final: the late producer learns it must compensate.
    await expect(outbox.commit(declined.id)).rejects.toThrow(PreparedMessageResolvedError);
    await expect(outbox.commit(declined.id)).rejects.toThrow(/cancelled.*compensate/);
    await expect(outbox.rollback(charged.id)).rejects.toThrow(PreparedMessageResolvedError);
    await outbox.commit(charged.id); // same resolution: fine
    expect((await state(declined.id)).state).toBe('cancelled');
    expect(await scheduler.runNow('checkback')).toBe(0); // nothing left to ask about
  });

  it('asks again with backoff while the answer is unknown, then applies the default resolution and says so', async () => {
    const { outbox, topic, asked, scheduler, state } = await setup({ maxChecks: 3, defaultResolution: 'rollback' });
    const exhausted: Array<{ messageId: string; checks: number; resolution: string }> = [];
    outbox.on('checkback:exhausted', (e) => exhausted.push(e));
    const prepared = await outbox.prepare({ topic, key: 'pay-4', type: 'PaymentCaptured', payload: {} });

    await scheduler.runNow('checkback');
    const first = await state(prepared.id);
    expect(first).toMatchObject({ state: 'prepared', check_count: 1 });
    // Not due again until the backoff has passed.
    expect(await scheduler.runNow('checkback')).toBe(0);
    await expect.poll(async () => scheduler.runNow('checkback'), { timeout: 5_000, interval: 50 }).toBe(1);
    expect((await state(prepared.id)).check_count).toBe(2);
    await expect.poll(async () => scheduler.runNow('checkback'), { timeout: 5_000, interval: 50 }).toBe(1);

    expect(asked).toHaveLength(3);
    expect(await state(prepared.id)).toMatchObject({ state: 'cancelled', resolved_by: 'default' });
    expect(exhausted).toEqual([
      { instanceId: scheduler.instanceId, messageId: prepared.id, checks: 3, resolution: 'rollback' },
    ]);
  });

  it('counts a checker that throws, or has been removed, as unknown, and records why', async () => {
    const { outbox, topic, scheduler, state, answerWith, knex, unregister } = await setup({
      maxChecks: 3,
      defaultResolution: 'commit',
    });
    answerWith(() => {
      throw new Error('gateway timeout');
    });
    const checkerErrors: Array<{ messageId: string; error: string }> = [];
    outbox.on('checkback:error', (e) => checkerErrors.push({ messageId: e.messageId, error: e.error.message }));
    const prepared = await outbox.prepare({ topic, key: 'pay-5', type: 'PaymentCaptured', payload: {} });
    await scheduler.runNow('checkback');
    // The checker's own error is not lost in a counted "unknown": it is reported.
    expect(checkerErrors).toEqual([{ messageId: prepared.id, error: 'gateway timeout' }]);
    const afterThrow = await knex('eventual.outbox').where({ id: prepared.id }).first();
    expect(afterThrow).toMatchObject({ state: 'prepared', check_count: 1 });
    expect(afterThrow.last_error).toMatch(/checker threw: gateway timeout/);

    unregister();
    const checkOnce = async () => {
      await scheduler.runNow('checkback');
      return (await state(prepared.id)).check_count;
    };
    await expect.poll(checkOnce, { timeout: 5_000, interval: 50 }).toBe(2);
    const afterMissing = await knex('eventual.outbox').where({ id: prepared.id }).first();
    expect(afterMissing.last_error).toMatch(/no checker registered/);

    const resolveOnce = async () => {
      await scheduler.runNow('checkback');
      return (await state(prepared.id)).state;
    };
    await expect.poll(resolveOnce, { timeout: 5_000, interval: 50 }).toBe('pending');
    expect((await state(prepared.id)).resolved_by).toBe('default');
  });

  it('refuses to prepare a message no checker could ever resolve', async () => {
    const { outbox } = await setup();
    await expect(outbox.prepare({ topic: 'unregistered', key: 'k', type: 'T', payload: {} })).rejects.toThrow(
      /no check-back checker/,
    );
  });
});
