import { sleep } from './fixtures.js';

export interface PacedRun {
  sent: number;
  elapsedMs: number;
  /** How far behind schedule the pacer ever was when it issued a send, in ms. */
  maxLagMs: number;
}

/**
 * Open-loop load at a steady rate: calls `send(i)` for i = 0, 1, ... at `ratePerS`
 * for `durationMs`, without waiting for earlier sends to finish (a slow send must
 * not lower the offered rate, or latency would hide as lost throughput). Returns
 * once every send has settled; the first failure rejects.
 */
export async function paced(
  ratePerS: number,
  durationMs: number,
  send: (i: number) => Promise<void>,
): Promise<PacedRun> {
  const total = Math.round((ratePerS * durationMs) / 1000);
  const inFlight: Promise<void>[] = [];
  const start = performance.now();
  let maxLagMs = 0;
  let i = 0;
  while (i < total) {
    const elapsed = performance.now() - start;
    const due = Math.min(total, Math.floor((elapsed * ratePerS) / 1000) + 1);
    for (; i < due; i++) {
      maxLagMs = Math.max(maxLagMs, elapsed - (i * 1000) / ratePerS);
      inFlight.push(send(i));
    }
    await sleep(1);
  }
  await Promise.all(inFlight);
  return { sent: total, elapsedMs: performance.now() - start, maxLagMs };
}
