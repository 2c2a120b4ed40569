import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { classifyKafkaError } from '../src/kafka-publisher.js';
import { fnv1a } from '../src/message.js';
import { planShares } from '../src/relay/plan-shares.js';

describe('planShares (fair split of shards among relays)', () => {
  it('takes free shards up to the ceiling', () => {
    expect(planShares({ members: 2, shards: 16, held: [] }, 0)).toEqual({ take: 8, release: 0 });
    expect(planShares({ members: 1, shards: 16, held: [] }, 0)).toEqual({ take: 16, release: 0 });
  });
  it('gives back what is above the ceiling when a member joins', () => {
    expect(planShares({ members: 3, shards: 16, held: [16] }, 16)).toEqual({ take: 0, release: 10 });
  });
  it('gives one back when nothing is free and a member is below the floor', () => {
    expect(planShares({ members: 3, shards: 16, held: [6, 6, 4] }, 6)).toEqual({ take: 0, release: 1 });
    expect(planShares({ members: 3, shards: 16, held: [6, 6, 4] }, 4)).toEqual({ take: 0, release: 0 });
    expect(planShares({ members: 3, shards: 16, held: [6, 5, 5] }, 6)).toEqual({ take: 0, release: 0 });
  });
  it('leaves a shard given back to the member below the floor instead of taking it again', () => {
    // 5 (just gave one back), 6, 4: one shard is free.
    expect(planShares({ members: 3, shards: 16, held: [5, 6, 4] }, 5)).toEqual({ take: 0, release: 0 });
    expect(planShares({ members: 3, shards: 16, held: [5, 6, 4] }, 6)).toEqual({ take: 0, release: 0 });
    expect(planShares({ members: 3, shards: 16, held: [5, 6, 4] }, 4)).toEqual({ take: 1, release: 0 });
  });
  it('converges to a split where every instance is within one shard of the others', () => {
    // Instances act one at a time, as the lease rows serialise them in the database.
    const held = [16, 0, 0];
    for (let round = 0; round < 10; round++) {
      for (const i of [0, 1, 2]) {
        const plan = planShares({ members: 3, shards: 16, held: held.filter((n) => n > 0) }, held[i]!);
        const free = 16 - held.reduce((a, b) => a + b, 0);
        held[i] = held[i]! - plan.release + Math.min(plan.take, free);
      }
    }
    expect(Math.max(...held) - Math.min(...held)).toBeLessThanOrEqual(1);
    expect(held.reduce((a, b) => a + b, 0)).toBe(16);
  });
});

describe('fnv1a shard hash', () => {
  it('is stable across processes and spreads keys', () => {
    expect(fnv1a('order-1')).toBe(fnv1a('order-1'));
    expect(fnv1a('')).toBe(0x811c9dc5);
    const shards = new Set(Array.from({ length: 1_000 }, (_, i) => fnv1a(`key-${i}`) % 32));
    expect(shards.size).toBe(32);
  });
});

describe('classifyKafkaError', () => {
  // The real kafkajs classes; its typings omit some of them and the object form of the constructor.
  const { KafkaJSError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError, KafkaJSNoBrokerAvailableError } =
    kafkajs as unknown as {
      KafkaJSError: new (e: Error | string) => Error;
      KafkaJSNumberOfRetriesExceeded: new (e: Error, retries: { retryCount: number; retryTime: number }) => Error;
      KafkaJSProtocolError: new (e: { type: string; message: string; retriable: boolean }) => Error;
      KafkaJSNoBrokerAvailableError: new () => Error;
    };
  const protocol = (type: string, message: string) => new KafkaJSProtocolError({ type, message, retriable: true });
  const exhausted = (e: Error) => new KafkaJSNumberOfRetriesExceeded(e, { retryCount: 2, retryTime: 300 });

  it('sees the group coordinator moving or loading after a broker restart as the broker being unavailable', () => {
    const loading = protocol(
      'GROUP_LOAD_IN_PROGRESS',
      "The coordinator is loading and hence can't process requests for this group",
    );
    const moved = protocol('NOT_COORDINATOR_FOR_GROUP', 'This is not the correct coordinator for this group');
    expect(classifyKafkaError(loading)).toBe('unavailable');
    expect(classifyKafkaError(exhausted(loading))).toBe('unavailable');
    // kafkajs rewraps a rebalancing error in a plain KafkaJSError without its type.
    expect(classifyKafkaError(exhausted(new KafkaJSError(moved)))).toBe('unavailable');
    expect(classifyKafkaError(new KafkaJSNoBrokerAvailableError())).toBe('unavailable');
  });
  it('keeps a message-level protocol error permanent and an unknown one retriable', () => {
    expect(
      classifyKafkaError(
        exhausted(
          protocol(
            'MESSAGE_TOO_LARGE',
            'The request included a message larger than the max message size the server will accept',
          ),
        ),
      ),
    ).toBe('permanent');
    expect(classifyKafkaError(new KafkaJSError('The group is rebalancing, so a rejoin is needed'))).toBe('retriable');
    expect(classifyKafkaError(new Error('boom'))).toBe('retriable');
  });
});
