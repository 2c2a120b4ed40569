import type { Random } from './random.js';

export interface CustomerSeed {
  id: string;
  /** Integer cents. */
  balance: number;
}

export interface ProductSeed {
  sku: string;
  /** Integer cents. */
  price: number;
  stock: number;
}

export interface SeedData {
  customers: CustomerSeed[];
  products: ProductSeed[];
}

/**
 * The demo's world: most customers can afford what they order, some cannot; most
 * products are plentiful, one is scarce (orders race for it) and one is sold out.
 */
export function demoSeed(random: Random, customerCount = 40): SeedData {
  const customers: CustomerSeed[] = [];
  for (let i = 1; i <= customerCount; i++) {
    const roll = random.next();
    // 70% comfortable, 20% enough for a few cheap orders, 10% almost broke.
    const balance = roll < 0.7 ? 500_000 : roll < 0.9 ? 12_000 : 1_500;
    customers.push({ id: `customer-${String(i).padStart(3, '0')}`, balance });
  }
  return {
    customers,
    products: [
      { sku: 'tea-sencha', price: 1_250, stock: 100_000 },
      { sku: 'kettle', price: 3_900, stock: 100_000 },
      { sku: 'teapot-cast-iron', price: 8_500, stock: 40 },
      { sku: 'rare-oolong', price: 14_000, stock: 6 },
      { sku: 'gold-leaf-matcha', price: 9_900, stock: 0 },
    ],
  };
}

/** How often each product is ordered in the demo's mix (same order as `products`). */
export const DEMO_SKU_WEIGHTS: Record<string, number> = {
  'tea-sencha': 40,
  kettle: 25,
  'teapot-cast-iron': 15,
  'rare-oolong': 15,
  'gold-leaf-matcha': 5,
};
