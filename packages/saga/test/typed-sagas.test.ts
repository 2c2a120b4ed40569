import { randomUUID } from 'node:crypto';
import type { JsonValue, Message } from '@eventual/outbox';
import {
  createParticipant,
  createSagaOrchestrator,
  defineSaga,
  InvalidReplyError,
  InvalidSagaDataError,
  SAGA_HEADER,
  SAGA_REPLY_TYPE,
} from '@eventual/saga';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { serviceFixture } from './support.js';

const fixture = serviceFixture('sagatyped');

interface Booking {
  bookingId: string;
  seat?: string;
  when?: unknown;
}

const parseSeat = (payload: JsonValue): { seat: string } => {
  const seat = (payload as { seat?: unknown } | null)?.seat;
  if (typeof seat !== 'string') throw new Error(`seat must be a string, got ${JSON.stringify(seat)}`);
  return { seat };
};

const note = (trx: Knex.Transaction, bookingId: string, what: string) =>
  trx('notes').insert({ booking_id: bookingId, what });

const booking = defineSaga<Booking>('booking')
  .step('hold')
  .invokeLocal(async ({ trx, data }) => {
    await note(trx, data.bookingId, 'hold');
  })
  .withCompensation(async ({ trx, data }) => {
    await note(trx, data.bookingId, 'release');
  })
  .step('seat')
  .invokeParticipant({ topic: 'seat.commands', type: 'PickSeat', payload: (d) => ({ bookingId: d.bookingId }) })
  .onReply(parseSeat, (data, reply) => ({ ...data, seat: reply.seat }))
  .step('stamp')
  .invokeLocal(async ({ trx, data }) => {
    await note(trx, data.bookingId, 'stamp');
    return { ...data, when: new Date() }; // not storable: JSON would give back a string
  })
  .build();

async function orchestratorService() {
  const { knex, outbox } = await fixture.service();
  await knex.schema.createTable('notes', (t) => {
    t.bigIncrements('seq');
    t.text('booking_id').notNullable();
    t.text('what').notNullable();
  });
  const orchestrator = createSagaOrchestrator({ knex, outbox, replyTopic: 'booking.replies', sagas: [booking] });
  await orchestrator.migrate();
  const notes = async (id: string) =>
    (await knex('notes').where({ booking_id: id }).orderBy('seq')).map((r: { what: string }) => r.what);
  const replyToSeat = (id: string, payload: JsonValue) => {
    const message: Message = {
      id: randomUUID(),
      topic: 'booking.replies',
      key: id,
      type: SAGA_REPLY_TYPE,
      payload,
      headers: {
        [SAGA_HEADER.id]: id,
        [SAGA_HEADER.type]: 'booking',
        [SAGA_HEADER.step]: '1',
        [SAGA_HEADER.phase]: 'forward',
        [SAGA_HEADER.outcome]: 'success',
      },
    };
    return knex.transaction((trx) => orchestrator.replyHandler({ trx, message, outbox: outbox.bind(trx) }));
  };
  return { knex, orchestrator, notes, replyToSeat };
}

describe('typed sagas against PostgreSQL', () => {
  it('refuses to start a saga whose data JSON would not give back, and the caller transaction rolls back', async () => {
    const s = await orchestratorService();
    const id = `b-${randomUUID()}`;
    const started = s.knex.transaction((trx) =>
      s.orchestrator.start(trx, booking, { id, data: { bookingId: id, when: new Date() } }),
    );
    await expect(started).rejects.toThrow(InvalidSagaDataError);
    await expect(started).rejects.toThrow(/data.when is a Date/);
    expect(await s.orchestrator.get(id)).toBeUndefined();
  });

  it('a reply its parse rejects fails the record non-retriably (the consumer dead-letters it); the saga still waits', async () => {
    const s = await orchestratorService();
    const id = `b-${randomUUID()}`;
    await s.knex.transaction((trx) => s.orchestrator.start(trx, booking, { id, data: { bookingId: id } }));
    const before = await s.orchestrator.get(id);
    expect(before).toMatchObject({ status: 'running', step: 'seat', waiting: 'reply' });

    const error = await s.replyToSeat(id, { seat: 12 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidReplyError);
    expect(error).toMatchObject({ retriable: false });
    expect((error as Error).message).toMatch(
      /step 'seat': the success reply was rejected .*seat must be a string, got 12/,
    );
    expect(await s.orchestrator.get(id)).toMatchObject({ status: 'running', version: before!.version });
  });

  it('a local step that returns data JSON would not give back fails, its writes undone, and earlier steps are compensated', async () => {
    const s = await orchestratorService();
    const id = `b-${randomUUID()}`;
    await s.knex.transaction((trx) => s.orchestrator.start(trx, booking, { id, data: { bookingId: id } }));
    await s.replyToSeat(id, { seat: '12A' });
    const done = await s.orchestrator.get(id);
    expect(done).toMatchObject({ status: 'compensated', data: { bookingId: id, seat: '12A' } });
    expect(done!.lastError).toMatch(/step 'stamp' failed: the local action returned data: data.when is a Date/);
    // 'stamp' wrote a note in its savepoint, rolled back with the failure.
    expect(await s.notes(id)).toEqual(['hold', 'release']);
  });
});

describe('participant with a parse option', () => {
  interface Seat {
    bookingId: string;
  }
  const parseSeatCommand = (payload: JsonValue): Seat => {
    const bookingId = (payload as { bookingId?: unknown } | null)?.bookingId;
    if (typeof bookingId !== 'string') throw new Error('bookingId must be a string');
    return { bookingId };
  };
  const command = (payload: JsonValue, phase: 'forward' | 'compensate' = 'forward'): Message => ({
    id: randomUUID(),
    topic: 'seat.commands',
    key: 's',
    type: 'PickSeat',
    payload,
    headers: {
      [SAGA_HEADER.id]: `saga-${randomUUID()}`,
      [SAGA_HEADER.type]: 'booking',
      [SAGA_HEADER.step]: '1',
      [SAGA_HEADER.phase]: phase,
      [SAGA_HEADER.replyTo]: 'booking.replies',
    },
  });

  it('hands the handler the parsed payload, and answers a payload parse rejects with a final failure', async () => {
    const { knex, outbox } = await fixture.service();
    const participant = createParticipant({ name: 'seats' });
    await participant.migrate(knex);
    const seen: string[] = [];
    const handler = participant.handle(
      async ({ command: c }) => {
        seen.push(c.payload.bookingId); // typed: Seat
        return { seat: '1A' };
      },
      { parse: parseSeatCommand },
    );
    const deliver = (message: Message) =>
      knex.transaction((trx) => handler({ trx, message, outbox: outbox.bind(trx) }));
    const good = command({ bookingId: 'b-1' });
    const bad = command({ bookingId: 7 });
    await deliver(good);
    await deliver(bad);
    expect(seen).toEqual(['b-1']);
    const replies = await knex
      .withSchema('eventual')
      .table('outbox')
      .where({ type: SAGA_REPLY_TYPE })
      .whereIn('key', [good.headers[SAGA_HEADER.id]!, bad.headers[SAGA_HEADER.id]!])
      .select('key', 'payload', 'headers');
    const byKey = new Map(replies.map((r: { key: string }) => [r.key, r]));
    expect(byKey.get(good.headers[SAGA_HEADER.id]!)).toMatchObject({
      payload: { seat: '1A' },
      headers: { [SAGA_HEADER.outcome]: 'success' },
    });
    expect(byKey.get(bad.headers[SAGA_HEADER.id]!)).toMatchObject({
      payload: { reason: 'the payload of PickSeat was rejected by its parse function: bookingId must be a string' },
      headers: { [SAGA_HEADER.outcome]: 'failure', [SAGA_HEADER.retriable]: 'false' },
    });
  });
});
