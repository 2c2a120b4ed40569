import { describe, expect, it } from 'vitest';
import { runDemo } from '../src/demo/run.js';
import { infrastructure } from './support.js';

describe('the demo with --chaos', () => {
  it('keeps every invariant while order, payment and warehouse are SIGKILLed and restarted mid-run', async () => {
    let output = '';
    const summary = await runDemo({
      orders: 80,
      concurrency: 8,
      seed: 7,
      chaos: { intervalMs: 3_500, downMs: 1_000 },
      infrastructure: infrastructure(),
      write: (text) => {
        output += text;
      },
      tty: false,
    });
    process.stdout.write(output.slice(output.lastIndexOf('eventual demo:')));

    // At least one service was SIGKILLed mid-run (a fast run can settle before a second kill).
    expect(summary.chaos?.total).toBeGreaterThanOrEqual(1);
    expect(summary.invariants.filter((i) => !i.ok)).toEqual([]);
    expect(summary.timing.settled).toBe(true);
    expect(summary.orders.placed).toBe(80);
    expect(summary.crashes).toEqual([]);
    expect(summary.ok).toBe(true);
  }, 180_000);
});
