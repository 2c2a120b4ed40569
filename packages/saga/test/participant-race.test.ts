import { randomUUID } from 'node:crypto';
import { waitUntil } from '@eventual/devstack';
import type { Message } from '@eventual/outbox';
import { type CommandHandler, createParticipant, SAGA_HEADER, type SagaPhase } from '@eventual/saga';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { serviceFixture } from './support.js';

const fixture = serviceFixture('sagarace');

/** A saga command as the orchestrator sends it (step 1 of saga `sagaId`). */
const command = (sagaId: string, phase: SagaPhase): Message => ({
  id: randomUUID(),
  topic: 'payment.commands',
  key: sagaId,
  type: phase === 'forward' ? 'ChargePayment' : 'RefundPayment',
  payload: {},
  headers: {
    [SAGA_HEADER.id]: sagaId,
    [SAGA_HEADER.type]: 'order',
    [SAGA_HEADER.step]: '1',
    [SAGA_HEADER.phase]: phase,
    [SAGA_HEADER.attempt]: '1',
    [SAGA_HEADER.replyTo]: 'order.replies',
  },
});

async function paymentParticipant() {
  const { knex, outbox } = await fixture.service();
  await knex.schema.createTable('effects', (t) => {
    t.bigIncrements('seq');
    t.text('saga_id').notNullable();
    t.text('action').notNullable();
  });
  const participant = createParticipant({ name: 'payment' });
  await participant.migrate(knex);
  /** Runs a participant handler for `message` in a transaction of its own, as a consumer would. */
  const deliver = (handler: CommandHandler, message: Message) =>
    knex.transaction((trx) => participant.handle(handler)({ trx, message, outbox: outbox.bind(trx) }));
  const effect = (trx: Knex.Transaction, sagaId: string, action: string) =>
    trx('effects').insert({ saga_id: sagaId, action });
  /** What happened to step 1 of a saga: the participant log's outcomes and the business effects. */
  const outcome = async (sagaId: string) => {
    const log = await knex('eventual.saga_participant_log').where({ saga_id: sagaId, step: 1 }).orderBy('phase');
    const effects = await knex('effects').where({ saga_id: sagaId }).orderBy('seq');
    return {
      log: Object.fromEntries(log.map((r: { phase: string; outcome: string }) => [r.phase, r.outcome])),
      effects: effects.map((r: { action: string }) => r.action),
    };
  };
  return { knex, deliver, effect, outcome };
}

/** Backends of this database waiting for a lock (row, advisory, ...). */
async function lockWaiters(knex: Knex): Promise<number> {
  const { rows } = await knex.raw(
    `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
  );
  return rows[0].n;
}

describe('participant: a forward command and its compensation for the same step at the same moment', () => {
  it('never applies the forward and skips the compensation: the undo waits for the forward and undoes it', async () => {
    const p = await paymentParticipant();
    const sagaId = `race-${randomUUID()}`;
    let inside!: () => void;
    const forwardInside = new Promise<void>((resolve) => {
      inside = resolve;
    });
    let release!: () => void;
    const barrier = new Promise<void>((resolve) => {
      release = resolve;
    });
    const charge: CommandHandler = async ({ trx }) => {
      await p.effect(trx, sagaId, 'charge');
      inside();
      await barrier; // the forward's transaction stays open here
      return { charged: true };
    };
    const refund: CommandHandler = async ({ trx }) => {
      await p.effect(trx, sagaId, 'refund');
      return { refunded: true };
    };

    // The two travel on different partitions, so two consumers handle them at once.
    const forward = p.deliver(charge, command(sagaId, 'forward'));
    await forwardInside;
    let compensationDone = false;
    const compensation = p.deliver(refund, command(sagaId, 'compensate')).finally(() => {
      compensationDone = true;
    });
    // Let the compensation run as far as it can while the forward is open: to its
    // commit, or until it waits for the forward's lock.
    await waitUntil(
      'the compensation to commit or to wait for a lock',
      async () => (compensationDone || (await lockWaiters(p.knex)) > 0 ? true : undefined),
      { timeoutMs: 20_000, intervalMs: 20 },
    );
    release();
    await Promise.all([forward, compensation]);

    const result = await p.outcome(sagaId);
    const appliedAndUndone = { log: { compensate: 'success', forward: 'success' }, effects: ['charge', 'refund'] };
    const refusedAfterUndo = { log: { compensate: 'skipped', forward: 'failure' }, effects: [] };
    expect([appliedAndUndone, refusedAfterUndo]).toContainEqual(result);
  });

  it('a forward command that arrives after its compensation is refused without effect', async () => {
    const p = await paymentParticipant();
    const sagaId = `late-${randomUUID()}`;
    const charge: CommandHandler = async ({ trx }) => {
      await p.effect(trx, sagaId, 'charge');
      return {};
    };
    await p.deliver(async () => ({}), command(sagaId, 'compensate'));
    await p.deliver(charge, command(sagaId, 'forward'));
    expect(await p.outcome(sagaId)).toEqual({ log: { compensate: 'skipped', forward: 'failure' }, effects: [] });
  });
});
