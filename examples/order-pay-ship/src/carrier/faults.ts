import type { Random } from '../shared/random.js';

/** How the simulated carrier misbehaves on booking requests (POST /shipments). */
export interface CarrierFaults {
  /** Probability of answering slowly (a delay within `slowMs`), but in time. */
  slow: number;
  /** Probability of booking, then answering only after `hangMs`: the client has long given up. */
  timeoutAfterBooking: number;
  /** Probability of hanging for `hangMs` and failing without booking anything. */
  lostBeforeBooking: number;
  /** Probability of refusing a new shipment with 422 (e.g. address not serviceable). */
  reject: number;
  slowMs: [number, number];
  hangMs: number;
}

export type Fault = 'none' | 'slow' | 'timeout-after-booking' | 'lost-before-booking' | 'reject';

export const NO_FAULTS: CarrierFaults = {
  slow: 0,
  timeoutAfterBooking: 0,
  lostBeforeBooking: 0,
  reject: 0,
  slowMs: [100, 800],
  hangMs: 4_000,
};

/** The demo's carrier: mostly fine, but every misbehaviour shows up in a run of a few hundred orders. */
export const DEMO_FAULTS: CarrierFaults = {
  ...NO_FAULTS,
  slow: 0.2,
  timeoutAfterBooking: 0.06,
  lostBeforeBooking: 0.02,
  reject: 0.04,
};

const RATES = ['slow', 'timeoutAfterBooking', 'lostBeforeBooking', 'reject'] as const;

/** Validates a (partial) fault configuration over `base`; the message names the field to fix. */
export function resolveFaults(given: unknown, base: CarrierFaults): CarrierFaults {
  if (given === null || typeof given !== 'object' || Array.isArray(given))
    throw new Error('carrier faults must be a JSON object, e.g. {"timeoutAfterBooking": 0.1}');
  const input = given as Record<string, unknown>;
  const known = [...RATES, 'slowMs', 'hangMs'];
  for (const key of Object.keys(input))
    if (!known.includes(key)) throw new Error(`unknown carrier fault '${key}'; known: ${known.join(', ')}`);
  const faults: CarrierFaults = { ...base, slowMs: [...base.slowMs] };
  for (const rate of RATES) {
    const value = input[rate];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !(value >= 0 && value <= 1))
      throw new Error(`carrier fault ${rate} must be a probability between 0 and 1, got ${JSON.stringify(value)}`);
    faults[rate] = value;
  }
  if (RATES.reduce((sum, r) => sum + faults[r], 0) > 1)
    throw new Error('carrier fault probabilities must add up to at most 1');
  if (input.slowMs !== undefined) {
    const s = input.slowMs;
    if (!Array.isArray(s) || s.length !== 2 || !s.every((n) => Number.isInteger(n) && n >= 0) || s[0] > s[1])
      throw new Error(`carrier fault slowMs must be [min, max] in ms, got ${JSON.stringify(s)}`);
    faults.slowMs = [s[0], s[1]];
  }
  if (input.hangMs !== undefined) {
    if (!Number.isInteger(input.hangMs) || (input.hangMs as number) < 0)
      throw new Error(`carrier fault hangMs must be a non-negative integer, got ${JSON.stringify(input.hangMs)}`);
    faults.hangMs = input.hangMs as number;
  }
  return faults;
}

/** Draws the fault for one booking request. */
export function drawFault(faults: CarrierFaults, random: Random): Fault {
  let roll = random.next();
  const table: Array<[Fault, number]> = [
    ['reject', faults.reject],
    ['timeout-after-booking', faults.timeoutAfterBooking],
    ['lost-before-booking', faults.lostBeforeBooking],
    ['slow', faults.slow],
  ];
  for (const [fault, p] of table) {
    if (roll < p) return fault;
    roll -= p;
  }
  return 'none';
}
