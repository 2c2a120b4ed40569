import { describe, expect, it } from 'vitest';
import { runDemo } from '../src/demo/run.js';
import { infrastructure } from './support.js';

describe('the demo', () => {
  it('runs a concurrent mix of orders to a green summary: every order settled, every invariant holds', async () => {
    let output = '';
    const summary = await runDemo({
      orders: 60,
      concurrency: 8,
      infrastructure: infrastructure(),
      write: (text) => {
        output += text;
      },
      tty: false,
    });
    process.stdout.write(output.slice(output.lastIndexOf('eventual demo:')));

    expect(summary.invariants.filter((i) => !i.ok)).toEqual([]);
    expect(summary.invariants.map((i) => i.name)).toContain('money is conserved');
    expect(summary.timing.settled).toBe(true);
    expect(summary.orders.placed).toBe(60);
    // The mix has all three outcomes: shipped, declined, and out of stock after paying.
    expect(summary.orders.byStatus.COMPLETED).toBeGreaterThan(0);
    expect(summary.orders.cancelReasons['payment declined']).toBeGreaterThan(0);
    expect(summary.orders.cancelReasons['not reserved']).toBeGreaterThan(0);
    expect(summary.crashes).toEqual([]);
    expect(summary.ok).toBe(true);
  }, 150_000);
});
