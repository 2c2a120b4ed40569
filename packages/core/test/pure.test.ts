import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../src/backoff.js';
import { jsonProblem } from '../src/json.js';
import { sleep, Wakeable } from '../src/wait.js';

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

describe('sleep', () => {
  it('resolves true after the delay, and false at once when its signal aborts', async () => {
    expect(await sleep(1)).toBe(true);
    const stop = new AbortController();
    const waiting = sleep(60_000, stop.signal);
    stop.abort();
    expect(await waiting).toBe(false);
    expect(await sleep(60_000, stop.signal)).toBe(false);
  });
});

describe('jsonProblem', () => {
  it('accepts what JSON round-trips: plain objects, arrays, finite numbers, strings, booleans, null', () => {
    expect(jsonProblem({ a: [1, 'x', true, null, { b: 2.5 }], c: new Date(0) }, 'data')).toBeUndefined();
  });

  it('names the exact path of what JSON would change or drop', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(jsonProblem({ a: [1, undefined] }, 'data')).toBe('data.a[1] is undefined, which is not JSON-serialisable');
    expect(jsonProblem({ n: Number.NaN }, 'data')).toBe('data.n is NaN, which JSON cannot represent');
    expect(jsonProblem({ total: 10n }, 'payload')).toMatch(/^payload.total is a bigint \(10n\)/);
    expect(jsonProblem(cycle, 'data')).toMatch(/^data.self refers back to itself/);
    expect(jsonProblem({ m: new Map() }, 'data')).toMatch(/^data.m is a Map object/);
  });

  it('refuses Dates when asked to, since JSON gives them back as strings', () => {
    expect(jsonProblem({ at: new Date(0) }, 'data', { allowDates: false })).toMatch(/^data.at is a Date/);
  });
});
