import { InvalidOptionError } from '@eventual/core';
import { defineSaga } from '@eventual/saga';
import { describe, expect, it } from 'vitest';

// The saga DSL without PostgreSQL or Kafka: what it accepts, what it refuses, and
// that a builder of the chain never sees what is declared on another.

type Data = { n: number };
const command = (type: unknown) => ({ topic: 'pay.commands', type: type as string, payload: (d: Readonly<Data>) => d });

describe('defineSaga', () => {
  it('accepts exactly the message types the outbox accepts for a command', () => {
    // '/' and a leading digit are legal message types for enqueue, so for a saga too.
    for (const type of ['ChargePayment', 'payments/Charge', '2fa.Verify', 'a:b-c_d']) {
      const saga = defineSaga<Data>('s').step('pay').invokeParticipant(command(type)).build();
      expect(saga.steps[0]?.command?.type).toBe(type);
    }
    for (const type of ['', 'Charge Payment', 'x'.repeat(201), 42]) {
      expect(() => defineSaga<Data>('s').step('pay').invokeParticipant(command(type))).toThrow(InvalidOptionError);
    }
    expect(() => defineSaga<Data>('s').step('pay').invokeParticipant(command('Charge Payment'))).toThrow(
      /saga s, step 'pay': command type must be 1-200 of \[A-Za-z0-9_.:\/-\], e.g. 'OrderCreated', got/,
    );
  });

  it('refuses a duplicate step, a step without action, a second action and a saga without steps', () => {
    const one = defineSaga<Data>('s')
      .step('a')
      .invokeLocal(async () => undefined);
    expect(() => one.step('a')).toThrow(/step 'a' is declared twice/);
    expect(() => defineSaga<Data>('s').step('a').build()).toThrow(
      /step 'a' needs invokeLocal\(...\) or invokeParticipant/,
    );
    expect(() => one.invokeParticipant(command('X'))).toThrow(/the step already has an action/);
    expect(() => defineSaga<Data>('s').build()).toThrow(/saga s has no steps/);
  });

  it('keeps an earlier builder of the chain apart from what a later one declares', () => {
    const first = defineSaga<Data>('s').step('reserve').invokeParticipant(command('Reserve'));
    const withNext = first.step('notify').invokeParticipant(command('Notify'));
    // Declared on the earlier builder after the chain went on: the later chain keeps its own step.
    first.withCompensation(command('Release')).retry({ maxAttempts: 3 });
    const later = withNext.build();
    const earlier = first.build();
    expect(later.steps[0]?.compensation).toBeUndefined();
    expect(later.steps[0]?.retry).toEqual({ maxAttempts: 1 });
    expect(earlier.steps[0]?.compensation?.command?.type).toBe('Release');
    expect(earlier.steps[0]?.retry).toEqual({ maxAttempts: 3 });
    expect(earlier.steps.map((s) => s.name)).toEqual(['reserve']);
  });

  it('returns a frozen definition', () => {
    const saga = defineSaga<Data>('s')
      .step('a')
      .invokeLocal(async () => undefined)
      .build();
    expect(Object.isFrozen(saga)).toBe(true);
    expect(Object.isFrozen(saga.steps)).toBe(true);
    expect(Object.isFrozen(saga.steps[0])).toBe(true);
  });
});
