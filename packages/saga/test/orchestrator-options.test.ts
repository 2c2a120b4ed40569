import { InvalidOptionError } from '@eventual/core';
import { createOutbox } from '@eventual/outbox';
import { createParticipant, createSagaOrchestrator, defineSaga } from '@eventual/saga';
import knexFactory from 'knex';
import { afterAll, describe, expect, it } from 'vitest';

// Options are resolved before anything touches the database: no connection is made here.
const knex = knexFactory({ client: 'pg', connection: 'postgres://nobody@127.0.0.1:1/none' });
afterAll(() => knex.destroy());
const outbox = createOutbox({ knex });
const saga = defineSaga<{ n: number }>('opts')
  .step('one')
  .invokeParticipant({ topic: 'one.commands', type: 'One', payload: (d) => ({ n: d.n }) })
  .build();
const base = { knex, outbox, replyTopic: 'opts.replies', sagas: [saga] };

describe('orchestrator options and jobs', () => {
  it('exposes the deadline/retry sweep as a periodic job keyed by its table, every second by default', () => {
    const [job, ...others] = createSagaOrchestrator(base).jobs;
    expect(others).toEqual([]);
    expect(job).toMatchObject({
      name: 'saga-sweep:eventual.sagas',
      key: 'eventual.sagas:saga-sweep',
      schedule: '* * * * * *',
    });
    expect(typeof job!.run).toBe('function');
  });

  it('takes the schedule from sweepSchedule, and the key from schema and table', () => {
    const [job] = createSagaOrchestrator({
      ...base,
      schema: 'orders',
      table: 'fulfilment',
      sweepSchedule: '*/5 * * * * *',
    }).jobs;
    expect(job).toMatchObject({ key: 'orders.fulfilment:saga-sweep', schedule: '*/5 * * * * *' });
    expect(createSagaOrchestrator({ ...base, sweepSchedule: false }).jobs[0]!.schedule).toBe(false);
  });

  it.each([
    [{ sweepSchedule: '' }, /sweepSchedule must be a node-cron expression/],
    [{ sweepSchedule: 5 }, /sweepSchedule must be a node-cron expression/],
    [{ sweepEvery: 5 }, /has no option 'sweepEvery'/],
    [{ sagas: [] }, /needs sagas/],
    [{ sagas: [saga, saga] }, /registered twice/],
    [{ replyTopic: 'no spaces' }, /replyTopic must be a legal Kafka topic name/],
    [{ maxCompensationAttempts: 0 }, /maxCompensationAttempts must be an integer between 1 and 1000/],
    [{ knex: undefined }, /knex must be a knex instance/],
    [{ knex: {} }, /knex must be a knex instance/],
    [{ outbox: undefined }, /outbox must be the orchestrator service's outbox/],
    [{ outbox: { enqueue() {} } }, /outbox must be the orchestrator service's outbox/],
  ])('refuses %o with a message that says what to change', (change, message) => {
    expect(() => createSagaOrchestrator({ ...base, ...(change as object) } as typeof base)).toThrow(InvalidOptionError);
    expect(() => createSagaOrchestrator({ ...base, ...(change as object) } as typeof base)).toThrow(message);
  });

  it('refuses a participant option it does not know, or no options at all', () => {
    expect(() => createParticipant({ name: 'p', tabel: 'x' } as never)).toThrow(
      /createParticipant has no option 'tabel'/,
    );
    expect(() => createParticipant(undefined as never)).toThrow(/createParticipant needs an options object/);
    expect(() => createParticipant({ name: 'p' })).not.toThrow();
  });
});
