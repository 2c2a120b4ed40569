import { asError, type BackoffPolicy, backoffDelay } from '@eventual/core';
import type { ShardLeases } from './shard-leases.js';

export interface KeeperParts {
  leases: ShardLeases;
  leaseTtlMs: number;
  /** Whether the relay may take new shards (false while it stops: it only renews then). */
  active: () => boolean;
  /** A round took shards or noted some to give back: the lanes should look now. */
  onChanged: () => void;
  onError: (error: Error) => void;
}

/**
 * The lease keeper: renews the leases every TTL/3 (also while stop() drains the batches
 * in flight: a slow publish must not outlive its lease and be republished by another
 * relay) and takes or gives back shards towards a fair share.
 * - `now()` runs a round at once (another relay announced that it joined, gave shards
 *   back or left): a membership change is acted on when it happens, not a round later.
 * - While the split is not settled (this instance waits for shards others must give
 *   back, or gives back its own), rounds come back after a short jittered backoff
 *   (100 ms doubling up to the period) instead of a whole period.
 * - The first rounds after start come back soon too: relays starting together may not
 *   see each other in their first round, nor hear each other's announcement before
 *   their LISTEN is up; a second look a moment later finds them (also without LISTEN).
 * Rounds never overlap; `stop()` waits for the one in flight, and none starts after it.
 */
export class LeaseKeeper {
  readonly #p: KeeperParts;
  readonly #periodMs: number;
  readonly #unsettled: BackoffPolicy;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #unsettledRounds = 0;
  /** Rounds after start still treated as unsettled, for the second look described above. */
  #startupRounds = 3;

  constructor(parts: KeeperParts) {
    this.#p = parts;
    this.#periodMs = Math.max(100, Math.floor(parts.leaseTtlMs / 3));
    this.#unsettled = { initialMs: Math.min(100, this.#periodMs), maxMs: this.#periodMs, factor: 2, jitter: 0.5 };
  }

  /** Starts the rounds, after the relay's first round in start(). */
  start(): void {
    this.#schedule(false);
  }

  /** Runs a round as soon as the one in flight (if any) is done. */
  now(): void {
    if (this.#stopped) return;
    if (this.#round) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round;
  }

  #run(): void {
    let settled = true;
    this.#round = (async () => {
      try {
        const outcome = await this.#p.leases.keep(this.#p.active);
        settled = outcome.settled;
        if (outcome.changed) this.#p.onChanged();
      } catch (error) {
        this.#p.onError(asError(error));
      }
    })();
    void this.#round.then(() => {
      this.#round = undefined;
      if (this.#stopped) return;
      if (this.#again) {
        this.#again = false;
        this.#run();
      } else this.#schedule(settled);
    });
  }

  #schedule(settled: boolean): void {
    if (this.#stopped) return;
    if (this.#startupRounds > 0) {
      this.#startupRounds -= 1;
      settled = false;
    }
    this.#unsettledRounds = settled ? 0 : this.#unsettledRounds + 1;
    const delay = settled ? this.#periodMs : backoffDelay(this.#unsettledRounds, this.#unsettled);
    this.#timer = setTimeout(() => this.#run(), delay);
  }
}
