import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEMO_SKU_WEIGHTS, type SeedData } from '../shared/demo-data.js';
import type { Random } from '../shared/random.js';

export interface PlannedOrder {
  id: string;
  customerId: string;
  sku: string;
  quantity: number;
}

/** A mix of orders over the seeded customers and products. */
export function planOrders(seed: SeedData, count: number, random: Random): PlannedOrder[] {
  const known = seed.products.map((p) => p.sku).filter((sku) => sku in DEMO_SKU_WEIGHTS);
  const weights = Object.fromEntries(
    known.length > 0 ? known.map((sku) => [sku, DEMO_SKU_WEIGHTS[sku]!]) : seed.products.map((p) => [p.sku, 1]),
  ) as Record<string, number>;
  return Array.from({ length: count }, () => ({
    id: randomUUID(),
    customerId: random.pick(seed.customers).id,
    sku: random.weighted(weights),
    quantity: random.int(1, 3),
  }));
}

export interface PlaceResult {
  placed: number;
  /** Orders the API refused (4xx): a bug in the plan, reported in the summary. */
  refused: Array<{ id: string; status: number; error: string }>;
  durationMs: number;
}

/**
 * Fires the orders at the order service's HTTP API, `concurrency` at a time. Each
 * order carries its own id, so a request whose answer was lost (the order service
 * was killed mid-request) is simply sent again: the API returns the order it already
 * has instead of placing it twice.
 */
export async function placeOrders(options: {
  orderUrl: string;
  orders: PlannedOrder[];
  concurrency: number;
  signal: AbortSignal;
  onPlaced?: () => void;
  /** Give up on one order after this long (the service never came back). */
  perOrderTimeoutMs?: number;
}): Promise<PlaceResult> {
  const started = Date.now();
  const refused: PlaceResult['refused'] = [];
  let next = 0;
  let placed = 0;

  async function placeOne(order: PlannedOrder): Promise<void> {
    const deadline = Date.now() + (options.perOrderTimeoutMs ?? 120_000);
    for (let attempt = 1; ; attempt++) {
      options.signal.throwIfAborted();
      try {
        const response = await fetch(`${options.orderUrl}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(order),
          signal: AbortSignal.any([options.signal, AbortSignal.timeout(10_000)]),
        });
        const body = (await response.json().catch(() => ({}))) as { error?: string };
        if (response.status === 200 || response.status === 201) {
          placed += 1;
          options.onPlaced?.();
          return;
        }
        if (response.status >= 400 && response.status < 500) {
          refused.push({ id: order.id, status: response.status, error: body.error ?? '' });
          return;
        }
      } catch (error) {
        if (options.signal.aborted) throw error;
        // Connection refused or reset: the order service is restarting. Try again.
      }
      if (Date.now() > deadline) throw new Error(`could not place order ${order.id}: the order service did not answer`);
      await sleep(Math.min(2_000, 100 * attempt), undefined, { signal: options.signal });
    }
  }

  const workers = Array.from({ length: Math.max(1, options.concurrency) }, async () => {
    while (next < options.orders.length) {
      const order = options.orders[next++]!;
      await placeOne(order);
    }
  });
  await Promise.all(workers);
  return { placed, refused, durationMs: Date.now() - started };
}
