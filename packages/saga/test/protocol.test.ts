import type { Message } from '@eventual/outbox';
import {
  MalformedSagaMessageError,
  parseSagaCommand,
  parseSagaReply,
  SAGA_HEADER,
  SAGA_REPLY_TYPE,
  sagaReply,
} from '@eventual/saga';
import { describe, expect, it } from 'vitest';

const command = (headers: Record<string, string>): Message => ({
  id: '018f0000-0000-7000-8000-00000000000a',
  topic: 'payment.commands',
  key: 'o-1',
  type: 'ChargePayment',
  payload: { amount: 5 },
  headers: { 'correlation-id': 'o-1', ...headers },
});

const headers = {
  [SAGA_HEADER.id]: 'o-1',
  [SAGA_HEADER.type]: 'order-fulfilment',
  [SAGA_HEADER.step]: '2',
  [SAGA_HEADER.phase]: 'compensate',
  [SAGA_HEADER.attempt]: '1',
  [SAGA_HEADER.replyTo]: 'order.replies',
};

describe('saga protocol', () => {
  it('reads a command and answers it with a reply that reads back as the same step and phase', () => {
    const parsed = parseSagaCommand(command(headers));
    expect(parsed).toEqual({
      sagaId: 'o-1',
      sagaType: 'order-fulfilment',
      step: 2,
      phase: 'compensate',
      replyTo: 'order.replies',
    });
    const reply = sagaReply(command(headers), 'failure', { reason: 'later' }, { retriable: true });
    expect(reply).toMatchObject({ topic: 'order.replies', key: 'o-1', type: SAGA_REPLY_TYPE, correlationId: 'o-1' });
    const received: Message = {
      id: 'r',
      topic: reply.topic,
      key: reply.key,
      type: reply.type,
      payload: reply.payload,
      headers: reply.headers!,
    };
    expect(parseSagaReply(received)).toEqual({
      sagaId: 'o-1',
      sagaType: 'order-fulfilment',
      step: 2,
      phase: 'compensate',
      outcome: 'failure',
      retriable: true,
    });
  });

  it.each([
    ['no saga id', { ...headers, [SAGA_HEADER.id]: '' }],
    ['a step that is not a number', { ...headers, [SAGA_HEADER.step]: 'two' }],
    ['an empty step', { ...headers, [SAGA_HEADER.step]: '' }],
    ['a negative step', { ...headers, [SAGA_HEADER.step]: '-1' }],
    ['an unknown phase', { ...headers, [SAGA_HEADER.phase]: 'sideways' }],
    ['no reply-to', { ...headers, [SAGA_HEADER.replyTo]: '' }],
  ])('refuses a command with %s, non-retriably', (_, bad) => {
    const error = (() => {
      try {
        parseSagaCommand(command(bad));
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(MalformedSagaMessageError);
    expect(error).toMatchObject({ retriable: false, code: 'malformed_saga_message' });
    expect((error as Error).message).toMatch(/is not a saga command: saga-id, saga-step, saga-phase and reply-to/);
    expect(() => sagaReply(command(bad), 'success')).toThrow(MalformedSagaMessageError);
  });

  it('refuses a reply without an outcome', () => {
    expect(() => parseSagaReply(command(headers))).toThrow(/is not a saga reply: .*saga-outcome headers are required/);
    expect(() => parseSagaReply(command({ ...headers, [SAGA_HEADER.outcome]: 'maybe' }))).toThrow(
      MalformedSagaMessageError,
    );
  });
});
