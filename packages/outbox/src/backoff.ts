/**
 * Jittered exponential backoff, pure so it can be unit-tested on its own.
 * attempt 1 waits about `initialMs`, each further attempt `factor` times longer, capped
 * at `maxMs`; "full jitter" on the upper `jitter` fraction spreads retries of many
 * messages or instances apart so they do not stampede the broker together.
 */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  factor: number;
  /** 0 = no jitter, 1 = anywhere between 0 and the computed delay. */
  jitter: number;
}

export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** exponent);
  const spread = base * policy.jitter;
  return Math.round(base - spread + spread * random());
}
