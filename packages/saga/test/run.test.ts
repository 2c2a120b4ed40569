import type { JsonValue } from '@eventual/outbox';
import {
  type AnySagaDefinition,
  defineSaga,
  InvalidReplyError,
  InvalidSagaDataError,
  SAGA_HEADER,
  type SagaData,
  type SagaDefinition,
  SagaStateError,
} from '@eventual/saga';
import { describe, expect, it } from 'vitest';
import { advance, drive, type LocalOutcome, type MachineDeps, type SagaEvent, type Transition } from '../src/run.js';
import type { SagaState } from '../src/state.js';

// The saga state machine without PostgreSQL or Kafka: every transition, one at a time.

type Trip = { reserved: boolean; paymentId: string | null; declined: string | null; log: string[] };

const command = (type: string) => ({
  topic: 'trip.commands',
  type,
  payload: (d: Readonly<Trip>) => ({ n: d.log.length }),
});

/**
 *   0 reserve  local        undo: local
 *   1 pay      participant  undo: RefundPayment   retry 3, deadline 5 s -> retry
 *   2 notify   participant  (no compensation)
 *   3 ship     participant  undo: CancelShipment  deadline 2 s -> compensate
 *   4 finish   local
 */
const trip = defineSaga<Trip>('trip')
  .step('reserve')
  .invokeLocal(async ({ data }) => ({ ...data, reserved: true }))
  .withCompensation(async ({ data }) => ({ ...data, reserved: false }))
  .step('pay')
  .invokeParticipant({ ...command('ChargePayment'), key: () => 'customer-7' })
  .onReply((data, reply) => ({ ...data, paymentId: (reply as { paymentId: string }).paymentId }))
  .onFailure((data, reply) => ({ ...data, declined: (reply as { reason: string }).reason }))
  .withCompensation(command('RefundPayment'))
  .retry({ maxAttempts: 3 })
  .deadline({ afterMs: 5_000, onTimeout: 'retry' })
  .step('notify')
  .invokeParticipant(command('Notify'))
  .step('ship')
  .invokeParticipant(command('Ship'))
  .withCompensation(command('CancelShipment'))
  .deadline({ afterMs: 2_000, onTimeout: 'compensate' })
  .step('finish')
  .invokeLocal(async ({ data }) => ({ ...data, log: [...data.log, 'finished'] }))
  .build();

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
let clock = T0;
const deps: MachineDeps = {
  now: () => new Date(clock),
  retryDelayMs: (attempt) => attempt * 1_000,
  maxCompensationAttempts: 3,
  replyTopic: 'trip.replies',
};
const at = (ms: number) => new Date(T0 + ms);

const definition = (saga: AnySagaDefinition) => saga as unknown as SagaDefinition<SagaData>;
const indexOf = (name: string) => definition(trip).steps.findIndex((s) => s.name === name);

const fresh = (data: Partial<Trip> = {}): SagaState => ({
  id: 'trip-1',
  type: 'trip',
  status: 'running',
  step: 0,
  attempt: 0,
  data: { reserved: false, paymentId: null, declined: null, log: [], ...data },
  waiting: null,
  wakeAt: null,
  lastError: null,
  history: [],
});

/** One transition, on a frozen copy of the state: the machine must never change its input. */
function next(state: SagaState, event: SagaEvent, saga: AnySagaDefinition = trip): Transition {
  const frozen = Object.freeze({ ...state, history: Object.freeze([...state.history]) }) as SagaState;
  return advance(definition(saga), frozen, event, deps);
}

const ok = (data?: object): SagaEvent => ({ kind: 'local', outcome: { ok: true, data: data as SagaData } });
const threw = (error: string): SagaEvent => ({ kind: 'local', outcome: { ok: false, error } });
const reply = (
  s: SagaState,
  outcome: 'success' | 'failure',
  payload: JsonValue = {},
  retriable = false,
): SagaEvent => ({
  kind: 'reply',
  step: s.step,
  phase: s.status === 'compensating' ? 'compensate' : 'forward',
  outcome,
  retriable,
  payload,
});
const wake: SagaEvent = { kind: 'wake' };
const events = (t: Transition) => t.notices.map((n) => n.event);
const lines = (s: SagaState) =>
  s.history.map((h) => `${h.step} ${h.phase} ${h.event}${h.detail ? `: ${h.detail}` : ''}`);

/** Runs local actions as succeeding with the data the test says, until the machine settles. */
function settle(t: Transition, local: (data: Trip) => LocalOutcome = (data) => ({ ok: true, data })): Transition {
  let current = t;
  while (current.runLocal) current = next(current.state, { kind: 'local', outcome: local(current.state.data as Trip) });
  return current;
}

/** A saga waiting for the reply to `name`'s forward command (sent once, at T0). */
function waitingAt(name: string, data: Partial<Trip> = {}): SagaState {
  clock = T0;
  return { ...fresh(data), step: indexOf(name), attempt: 1, waiting: 'reply', wakeAt: null };
}

describe('saga state machine: forward', () => {
  it('start pauses for the first local step, then sends the first participant command with the saga headers', () => {
    clock = T0;
    const started = next(fresh(), { kind: 'start' });
    expect(started.runLocal).toMatchObject({ phase: 'forward', step: 0 });
    expect(started.commands).toEqual([]);
    expect(events(started)).toEqual(['saga:started']);
    expect(started.state.attempt).toBe(1);

    const sent = next(started.state, ok({ ...(started.state.data as Trip), reserved: true }));
    expect(sent.runLocal).toBeUndefined();
    expect(sent.state).toMatchObject({ status: 'running', step: 1, attempt: 1, waiting: 'reply', wakeAt: at(5_000) });
    expect((sent.state.data as Trip).reserved).toBe(true);
    expect(sent.commands).toEqual([
      {
        topic: 'trip.commands',
        key: 'customer-7',
        type: 'ChargePayment',
        payload: { n: 0 },
        correlationId: 'trip-1',
        headers: {
          [SAGA_HEADER.id]: 'trip-1',
          [SAGA_HEADER.type]: 'trip',
          [SAGA_HEADER.step]: '1',
          [SAGA_HEADER.phase]: 'forward',
          [SAGA_HEADER.attempt]: '1',
          [SAGA_HEADER.replyTo]: 'trip.replies',
        },
      },
    ]);
    expect(lines(sent.state)).toEqual(['reserve forward ran', 'pay forward sent']);
    expect(sent.state.history[0]).toMatchObject({ at: at(0).toISOString(), attempt: 1 });
  });

  it('a success reply is folded into the data and the next step is sent; without a deadline there is no wake-up', () => {
    const t = next(waitingAt('pay'), reply(waitingAt('pay'), 'success', { paymentId: 'p-9' }));
    expect((t.state.data as Trip).paymentId).toBe('p-9');
    expect(t.state).toMatchObject({ step: 2, attempt: 1, waiting: 'reply', wakeAt: null });
    expect(t.commands.map((c) => [c.type, c.key])).toEqual([['Notify', 'trip-1']]);
    expect(lines(t.state)).toEqual(['pay forward succeeded', 'notify forward sent']);
  });

  it('completes after the last step: status completed, waiting for nothing, the last step named', () => {
    const ship = waitingAt('ship');
    const finished = (data: Trip): LocalOutcome => ({ ok: true, data: { ...data, log: [...data.log, 'finished'] } });
    const t = settle(next(ship, reply(ship, 'success')), finished);
    expect(t.state).toMatchObject({ status: 'completed', step: 4, waiting: null, wakeAt: null });
    expect((t.state.data as Trip).log).toEqual(['finished']);
    expect(events(t)).toEqual(['saga:completed']);
    expect(lines(t.state)).toEqual(['ship forward succeeded', 'finish forward ran']);
  });

  it('a local step that throws compensates the steps before it, not itself', () => {
    const ship = waitingAt('ship');
    const paused = next(ship, reply(ship, 'success'));
    const t = next(paused.state, threw('order is not pending'));
    expect(t.state).toMatchObject({ status: 'compensating', step: 3, attempt: 1, waiting: 'reply' });
    expect(t.state.lastError).toBe("step 'finish' failed: order is not pending");
    expect(t.commands.map((c) => [c.type, c.headers?.[SAGA_HEADER.phase]])).toEqual([['CancelShipment', 'compensate']]);
    expect(t.notices).toEqual([
      {
        event: 'saga:compensating',
        payload: {
          sagaId: 'trip-1',
          type: 'trip',
          fromStep: 'finish',
          reason: "step 'finish' failed: order is not pending",
        },
      },
    ]);
  });
});

describe('saga state machine: failure replies and retries', () => {
  it('a final failure reply folds onFailure, then compensates the earlier steps in reverse', () => {
    const pay = waitingAt('pay', { reserved: true });
    const t = next(pay, reply(pay, 'failure', { reason: 'insufficient funds' }));
    expect((t.state.data as Trip).declined).toBe('insufficient funds');
    expect(t.runLocal).toMatchObject({ phase: 'compensate', step: 0 });
    expect(t.state).toMatchObject({
      status: 'compensating',
      step: 0,
      lastError: "step 'pay' failed: insufficient funds",
    });
    const done = settle(t, (data) => ({ ok: true, data: { ...data, reserved: false } }));
    expect(done.state).toMatchObject({ status: 'compensated', step: 0, waiting: null });
    expect((done.state.data as Trip).reserved).toBe(false);
    expect(events(done)).toEqual(['saga:compensated']);
    expect(lines(done.state)).toEqual(['pay forward failed: insufficient funds', 'reserve compensate ran']);
  });

  it('a retriable failure within maxAttempts schedules a retry after the backoff; the wake-up sends the command again', () => {
    const pay = waitingAt('pay');
    const failed = next(pay, reply(pay, 'failure', { reason: 'busy' }, true));
    expect(failed.commands).toEqual([]);
    expect(failed.state).toMatchObject({ status: 'running', step: 1, attempt: 1, waiting: 'retry', wakeAt: at(1_000) });
    clock = T0 + 1_000;
    const resent = next(failed.state, wake);
    expect(resent.commands.map((c) => c.headers?.[SAGA_HEADER.attempt])).toEqual(['2']);
    expect(resent.state).toMatchObject({ attempt: 2, waiting: 'reply', wakeAt: at(6_000) });
    expect(lines(resent.state)).toEqual(['pay forward failed: busy', 'pay forward sent']);
  });

  it('a retriable failure on the last attempt compensates', () => {
    const pay = { ...waitingAt('pay'), attempt: 3 };
    const t = next(pay, reply(pay, 'failure', { reason: 'busy' }, true));
    expect(t.state).toMatchObject({ status: 'compensating', step: 0 });
  });

  it('a failure reply of a step without a retry policy compensates at once, even if retriable', () => {
    const notify = waitingAt('notify');
    const t = next(notify, reply(notify, 'failure', 'no mailbox', true));
    expect(t.state.lastError).toBe(`step 'notify' failed: "no mailbox"`);
    expect(t.commands.map((c) => c.type)).toEqual(['RefundPayment']);
  });
});

describe('saga state machine: deadlines', () => {
  it("onTimeout 'retry' sends the command again while attempts are left", () => {
    const pay = { ...waitingAt('pay'), wakeAt: at(5_000) };
    clock = T0 + 5_000;
    const t = next(pay, wake);
    expect(lines(t.state)).toEqual(['pay forward timed-out', 'pay forward sent']);
    expect(t.state).toMatchObject({ status: 'running', attempt: 2, waiting: 'reply', wakeAt: at(10_000) });
  });

  it("onTimeout 'retry' compensates the step itself once attempts are used up, since its outcome is unknown", () => {
    const pay = { ...waitingAt('pay'), attempt: 3 };
    const t = next(pay, wake);
    expect(t.state).toMatchObject({ status: 'compensating', step: 1, attempt: 1 });
    expect(t.state.lastError).toBe("step 'pay' got no reply within 5000 ms");
    expect(t.commands.map((c) => [c.type, c.headers?.[SAGA_HEADER.step]])).toEqual([['RefundPayment', '1']]);
    expect(events(t)).toEqual(['saga:compensating']);
  });

  it("onTimeout 'compensate' compensates the step itself at the first timeout", () => {
    const ship = waitingAt('ship');
    const t = next(ship, wake);
    expect(lines(t.state)).toEqual(['ship forward timed-out', 'ship compensate sent']);
    expect(t.state).toMatchObject({ status: 'compensating', step: 3, attempt: 1 });
    expect(t.state.lastError).toBe("step 'ship' got no reply within 2000 ms");
    expect(t.commands.map((c) => c.type)).toEqual(['CancelShipment']);
  });

  it('a wake-up of a saga that waits for nothing changes nothing', () => {
    const done = { ...fresh(), status: 'completed' as const };
    const t = next(done, wake);
    expect(t.changed).toBe(false);
    expect(t.state).toEqual(done);
  });
});

describe('saga state machine: compensation', () => {
  it('runs in reverse order and skips steps without a compensation', () => {
    const ship = waitingAt('ship');
    const failed = next(ship, reply(ship, 'failure', { reason: 'no carrier' }));
    // notify (step 2) has no compensation: skipped, pay is next.
    expect(failed.state).toMatchObject({ status: 'compensating', step: 1, attempt: 1, waiting: 'reply' });
    expect(failed.commands.map((c) => [c.type, c.headers?.[SAGA_HEADER.step]])).toEqual([['RefundPayment', '1']]);
    const refunded = next(failed.state, reply(failed.state, 'success'));
    expect(refunded.runLocal).toMatchObject({ phase: 'compensate', step: 0 });
    const done = settle(refunded);
    expect(done.state.status).toBe('compensated');
    expect(lines(done.state)).toEqual([
      'ship forward failed: no carrier',
      'pay compensate sent',
      'pay compensate succeeded',
      'reserve compensate ran',
    ]);
  });

  it('a failing compensation is retried with backoff and the saga is failed after maxCompensationAttempts', () => {
    clock = T0;
    let s: SagaState = { ...waitingAt('pay'), status: 'compensating' };
    const seen: string[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const t = next(s, reply(s, 'failure', { reason: 'ledger locked' }));
      expect(t.state.lastError).toBe(`compensation of step 'pay' failed (attempt ${attempt}): ledger locked`);
      seen.push(...events(t));
      if (attempt < 3) {
        expect(t.state).toMatchObject({ status: 'compensating', waiting: 'retry', wakeAt: at(attempt * 1_000) });
        s = next(t.state, wake).state; // the retry is due: sent again
        expect(s).toMatchObject({ attempt: attempt + 1, waiting: 'reply' });
      } else {
        expect(t.state).toMatchObject({ status: 'failed', step: 1, waiting: null, wakeAt: null });
        expect(t.notices[0]).toEqual({
          event: 'saga:failed',
          payload: { sagaId: 'trip-1', type: 'trip', step: 'pay', error: t.state.lastError },
        });
        s = t.state;
      }
    }
    expect(seen).toEqual(['saga:failed']);
  });

  it('a local compensation that throws is retried the same way', () => {
    const s: SagaState = { ...fresh(), status: 'compensating', step: 0, attempt: 1 };
    const t = next(s, threw('disk full'));
    expect(t.state).toMatchObject({ status: 'compensating', waiting: 'retry', wakeAt: at(1_000) });
    expect(t.state.lastError).toBe("compensation of step 'reserve' failed (attempt 1): disk full");
    const again = next(t.state, wake);
    expect(again.runLocal).toMatchObject({ phase: 'compensate', step: 0 });
    expect(again.state.attempt).toBe(2);
  });

  it('a compensation command with no reply by the deadline is sent again, until the limit: then failed', () => {
    const s: SagaState = { ...waitingAt('pay'), status: 'compensating', wakeAt: at(5_000) };
    const resent = next(s, wake);
    expect(resent.commands.map((c) => c.headers?.[SAGA_HEADER.attempt])).toEqual(['2']);
    const last = next({ ...s, attempt: 3 }, wake);
    expect(last.state.status).toBe('failed');
    expect(last.state.lastError).toBe("compensation of step 'pay' failed (attempt 3): no reply before the deadline");
  });

  it('resume moves a failed saga back to compensating and retries the compensation that failed, from attempt 1', () => {
    const failed: SagaState = { ...waitingAt('pay'), status: 'failed', attempt: 3, waiting: null };
    const t = next(failed, { kind: 'resume' });
    expect(t.state).toMatchObject({ status: 'compensating', step: 1, attempt: 1, waiting: 'reply' });
    expect(lines(t.state)).toEqual(['pay compensate resumed', 'pay compensate sent']);
    expect(() => next(fresh(), { kind: 'resume' })).toThrow(SagaStateError);
    expect(() => next(fresh(), { kind: 'resume' })).toThrow(/is running; only a failed saga can be resumed/);
  });
});

describe('saga state machine: replies that do not fit', () => {
  const pay = waitingAt('pay');
  it.each([
    ['for another step', { ...pay }, { step: 0 }, 'saga waits for step 1 (forward), reply is for step 0 (forward)'],
    [
      'for the other phase',
      { ...pay },
      { phase: 'compensate' },
      'saga waits for step 1 (forward), reply is for step 1 (compensate)',
    ],
    ['for a finished saga', { ...pay, status: 'completed' }, {}, 'saga is completed'],
    ['while it waits for nothing', { ...pay, waiting: null }, {}, 'saga waits for nothing'],
  ] as const)('ignores a reply %s: nothing changes', (_, state, change, reason) => {
    const t = next(state as SagaState, { ...reply(pay, 'success'), ...change } as SagaEvent);
    expect(t.changed).toBe(false);
    expect(t.state).toEqual(state);
    expect(t.commands).toEqual([]);
    expect(t.notices).toEqual([
      {
        event: 'saga:replyIgnored',
        payload: {
          sagaId: 'trip-1',
          step: (change as { step?: number }).step ?? 1,
          phase: (change as { phase?: string }).phase ?? 'forward',
          reason,
        },
      },
    ]);
  });

  it('a second success reply of the same step, after the first advanced the saga, is ignored', () => {
    const first = next(pay, reply(pay, 'success', { paymentId: 'p-1' }));
    const again = next(first.state, reply(pay, 'success', { paymentId: 'p-2' }));
    expect(again.changed).toBe(false);
    expect((again.state.data as Trip).paymentId).toBe('p-1');
  });
});

describe('saga state machine: typed replies and saga data', () => {
  // An interface, not a type alias: saga data need not be declared as an index signature.
  interface Order {
    orderId: string;
    paymentId?: string;
    placedAt?: unknown;
  }
  const parseCharge = (payload: JsonValue): { paymentId: string } => {
    const id = (payload as { paymentId?: unknown } | null)?.paymentId;
    if (typeof id !== 'string') throw new Error('paymentId must be a string');
    return { paymentId: id };
  };
  const order = defineSaga<Order>('order')
    .step('note')
    .invokeLocal(async () => {
      await Promise.resolve(); // a local step that returns nothing
    })
    .step('charge')
    .invokeParticipant({ topic: 'payment.commands', type: 'Charge', payload: (d) => ({ orderId: d.orderId }) })
    .onReply(parseCharge, (data, reply) => ({ ...data, paymentId: reply.paymentId }))
    .onFailure((data) => ({ ...data, placedAt: new Date(0) }))
    .build();
  const waiting: SagaState = {
    ...fresh(),
    type: 'order',
    data: { orderId: 'o-1' },
    step: 1,
    attempt: 1,
    waiting: 'reply',
  };

  it('a parsed reply is folded as parse returned it', () => {
    const t = next(waiting, { ...reply(waiting, 'success', { paymentId: 'p-1', extra: true }) }, order);
    expect(t.state).toMatchObject({ status: 'completed', data: { orderId: 'o-1', paymentId: 'p-1' } });
  });

  it('a reply its parse rejects is refused non-retriably, naming the step and the parse error', () => {
    const error = (() => {
      try {
        next(waiting, reply(waiting, 'success', { paymentId: 42 }), order);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InvalidReplyError);
    expect(error).toMatchObject({ retriable: false, code: 'invalid_saga_reply' });
    expect((error as Error).message).toBe(
      "saga order, step 'charge': the success reply was rejected by its parse function: paymentId must be a string",
    );
  });

  it('a fold that returns data JSON would not give back refuses it, naming the path', () => {
    expect(() => next(waiting, reply(waiting, 'failure', { reason: 'no' }), order)).toThrow(InvalidSagaDataError);
    expect(() => next(waiting, reply(waiting, 'failure', { reason: 'no' }), order)).toThrow(
      /saga order, step 'charge': onFailure returned data: data.placedAt is a Date/,
    );
  });
});

describe('drive', () => {
  it('runs the local actions the machine pauses on, in order, and collects commands and events', async () => {
    clock = T0;
    const ran: string[] = [];
    const t = await drive(definition(trip), fresh(), { kind: 'start' }, deps, async (_action, state) => {
      ran.push(`attempt ${state.attempt}`);
      return { ok: true, data: { ...(state.data as Trip), reserved: true } };
    });
    expect(ran).toEqual(['attempt 1']);
    expect(t.commands.map((c) => c.type)).toEqual(['ChargePayment']);
    expect(events(t as Transition)).toEqual(['saga:started']);
    expect(t.changed).toBe(true);
  });

  it('an all-local saga completes in one drive', async () => {
    const local = defineSaga<{ n: number }>('local')
      .step('one')
      .invokeLocal(({ data }) => ({ n: data.n + 1 }))
      .step('two')
      .invokeLocal(({ data }) => ({ n: data.n * 10 }))
      .build();
    const t = await drive(
      definition(local),
      { ...fresh(), type: 'local', data: { n: 1 } },
      { kind: 'start' },
      deps,
      async (action, s) => {
        const data = await action({ trx: undefined as never, sagaId: s.id, data: s.data as SagaData });
        return { ok: true, data: data as SagaData };
      },
    );
    expect(t.state).toMatchObject({ status: 'completed', step: 1, data: { n: 20 } });
    expect(events(t as Transition)).toEqual(['saga:started', 'saga:completed']);
  });
});
