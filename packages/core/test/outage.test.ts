import { describe, expect, it } from 'vitest';
import { DatabaseError, DatabaseUnavailableError, EventualError, InvalidOptionError } from '../src/errors.js';
import { isDatabaseOutage } from '../src/outage.js';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('isDatabaseOutage', () => {
  it.each([
    ['a terminated backend (57P01)', withCode('terminating connection due to administrator command', '57P01')],
    [
      'an immediate shutdown (57P02)',
      withCode('terminating connection because of crash of another server process', '57P02'),
    ],
    ['a server starting up (57P03)', withCode('the database system is starting up', '57P03')],
    ['a connection exception (class 08)', withCode('connection failure', '08006')],
    ['too many connections (53300)', withCode('sorry, too many clients already', '53300')],
    ['a refused socket', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['a reset socket', withCode('read ECONNRESET', 'ECONNRESET')],
    ['pg losing its socket', new Error('Connection terminated unexpectedly')],
    ['a client that lost its connection', new Error('Client has encountered a connection error and is not queryable')],
    [
      'the knex pool timing out',
      Object.assign(new Error('Knex: Timeout acquiring a connection. The pool is probably full.'), {
        name: 'KnexTimeoutError',
      }),
    ],
    [
      'an outage wrapped by a handler',
      new Error('could not charge', { cause: withCode('read ECONNRESET', 'ECONNRESET') }),
    ],
    [
      'an AggregateError of refused addresses',
      new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], 'connect failed'),
    ],
    ['a DatabaseUnavailableError', new DatabaseUnavailableError('outbox.claimBatch', 'select 1', 'gone', undefined)],
  ])('says yes for %s', (_what, error) => {
    expect(isDatabaseOutage(error)).toBe(true);
  });

  it.each([
    ['a unique violation (23505)', withCode('duplicate key value violates unique constraint', '23505')],
    ['a serialization failure (40001)', withCode('could not serialize access', '40001')],
    ['an aborted transaction (25P02)', withCode('current transaction is aborted', '25P02')],
    ['a missing table (42P01)', withCode('relation "x" does not exist', '42P01')],
    ['a statement timeout (57014)', withCode('canceling statement due to statement timeout', '57014')],
    ['a handler error', new Error('card declined')],
    [
      "knex's client-side query timeout",
      Object.assign(new Error('Defined query timeout of 2000ms exceeded when running query.'), {
        name: 'KnexTimeoutError',
      }),
    ],
    [
      'a DatabaseError that is not an outage',
      new DatabaseError('inbox.claimMessage', 'select 1', 'boom', withCode('boom', '22P02')),
    ],
    ['not an error at all', 'oops'],
    ['undefined', undefined],
  ])('says no for %s', (_what, error) => {
    expect(isDatabaseOutage(error)).toBe(false);
  });

  it('survives a cause chain that refers back to itself', () => {
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(isDatabaseOutage(a)).toBe(false);
  });
});

describe('EventualError', () => {
  it('is retriable unless it says otherwise, and input errors say otherwise', () => {
    expect(new EventualError('database_error', 'something failed').retriable).toBe(true);
    expect(new EventualError('database_error', 'bad', { retriable: false }).retriable).toBe(false);
    expect(new InvalidOptionError('batchSize must be an integer').retriable).toBe(false);
  });
});
