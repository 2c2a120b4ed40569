/**
 * Jittered exponential backoff, pure so it can be unit-tested on its own.
 * attempt 1 waits about `initialMs`, each further attempt `factor` times longer, capped
 * at `maxMs`; "full jitter" on the upper `jitter` fraction spreads retries of many
 * messages or instances apart so they do not stampede the broker or the database.
 */
export interface BackoffPolicy {
  /** Delay of attempt 1, in ms, before jitter. */
  initialMs: number;
  /** Cap on the delay of any attempt, in ms, before jitter. */
  maxMs: number;
  /** How many times longer each further attempt waits than the one before. */
  factor: number;
  /** 0 = no jitter, 1 = anywhere between 0 and the computed delay. */
  jitter: number;
}

/**
 * The delay in ms before `attempt` (1-based; anything below 1 counts as 1): the capped
 * exponential delay, less a random part of up to `jitter` of it. `random` returns a
 * number in [0, 1); inject it to make a test deterministic.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** exponent);
  const spread = base * policy.jitter;
  return Math.round(base - spread + spread * random());
}

/**
 * While the database or the broker is unreachable, a loop waits with this backoff
 * (the relay as a whole, a consumer's record): no attempt is counted, it is not the
 * message's fault. Short at first, so a blip costs little; capped, so recovery is
 * noticed within seconds.
 */
export const OUTAGE_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 5_000, factor: 2, jitter: 0.5 };
