import { backoffDelay } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { fnv1a } from '../src/message.js';
import { planShares } from '../src/relay.js';
import { Wakeable } from '../src/wakeable.js';

describe('backoffDelay', () => {
  const policy = { initialMs: 100, maxMs: 1_000, factor: 2, jitter: 0.5 };
  it('grows exponentially from initialMs and is capped at maxMs', () => {
    const noJitter = { ...policy, jitter: 0 };
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, noJitter))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });
  it('spreads delays over the jitter fraction below the computed delay', () => {
    expect(backoffDelay(3, policy, () => 0)).toBe(200);
    expect(backoffDelay(3, policy, () => 0.999999)).toBe(400);
    const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(3, policy)));
    expect(seen.size).toBeGreaterThan(10);
    for (const d of seen) expect(d).toBeGreaterThanOrEqual(200);
  });
});

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

describe('Wakeable', () => {
  it('resolves early on wake() and remembers a wake-up that came while not waiting', async () => {
    const w = new Wakeable();
    const started = Date.now();
    const waiting = w.wait(60_000);
    w.wake();
    await waiting;
    w.wake();
    await w.wait(60_000);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
