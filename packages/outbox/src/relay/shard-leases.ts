import { sleep, type TypedEmitter } from '@eventual/core';
import type { RelayEventMap } from '../events.js';
import type { ResolvedOutboxOptions } from '../options.js';
import {
  acquireFreeShards,
  acquireLease,
  announceLeases,
  memberLeaseName,
  reclaimOwnShards,
  releaseLeases,
  renewLeases,
  selectMembership,
  shardLeaseName,
} from '../sql/leases.js';
import { run } from '../sql/statement.js';
import type { ResolvedRelayOptions } from './options.js';
import { type Membership, planShares } from './plan-shares.js';

export type OwnedShard = [shard: number, token: number];

/** What a keeper round did: whether the lanes have new work, and whether the split is settled. */
export interface KeepOutcome {
  /** Shards were taken, or excess noted for the lanes to give back: wake the lanes. */
  changed: boolean;
  /**
   * This instance holds its fair share and owes nothing; false while it waits for
   * others to give shards back, or must give some back itself: the keeper comes back soon.
   */
  settled: boolean;
}

/**
 * Attempts at taking a fair share within one round. A shortfall means another
 * instance took some of the same free shards at the same moment; the next attempt
 * reads the membership again and asks for what is still free, after a short jittered
 * pause so two instances do not collide again in lockstep.
 */
const TAKE_ATTEMPTS = 4;

/**
 * The shards one relay holds, each with the fencing token it holds it under, and the
 * statements that keep them: renew, take a fair share of free shards, give back the
 * excess, reclaim a previous life's shards at start, release everything at stop.
 * Lanes read `lane(n)` before each batch; only the keeper and the lanes change it.
 */
export class ShardLeases {
  readonly #owned = new Map<number, number>();
  readonly #r: ResolvedRelayOptions;
  readonly #o: ResolvedOutboxOptions;
  readonly #events: TypedEmitter<RelayEventMap>;
  /** Shards to give back, by whichever lanes next finish a batch (see releaseExcess). */
  #excess = 0;
  #memberToken = 0;

  constructor(r: ResolvedRelayOptions, o: ResolvedOutboxOptions, events: TypedEmitter<RelayEventMap>) {
    this.#r = r;
    this.#o = o;
    this.#events = events;
  }

  /** Owned shards, ascending. */
  list(): number[] {
    return [...this.#owned.keys()].sort((a, b) => a - b);
  }

  /** The owned shards of a lane (shard mod lanes), with their tokens. */
  lane(lane: number): OwnedShard[] {
    return [...this.#owned.entries()].filter(([shard]) => shard % this.#r.lanes === lane);
  }

  /** At start: a previous life of this instance id still holding shards gives them to us. */
  async reclaim(): Promise<void> {
    const r = this.#r;
    const o = this.#o;
    const reclaimed = await run<{ shard: number; token: string }>(
      o.knex,
      reclaimOwnShards(o, r.instanceId, r.leaseTtlMs),
    );
    for (const t of reclaimed) this.#owned.set(t.shard, Number(t.token));
  }

  /**
   * Renews what we hold (dropping what was taken over), then, while `grow()`, takes free
   * shards up to a fair share, retrying a shortfall at once (bounded), or notes the
   * excess to give back.
   */
  async keep(grow: () => boolean): Promise<KeepOutcome> {
    const r = this.#r;
    const o = this.#o;
    const [member] = await run<{ token: string }>(
      o.knex,
      acquireLease(o, memberLeaseName(r.instanceId), r.instanceId, r.leaseTtlMs),
    );
    if (member) this.#memberToken = Number(member.token);
    await this.#renew();
    let changed = false;
    for (let attempt = 1; attempt <= TAKE_ATTEMPTS; attempt++) {
      if (!grow()) return { changed, settled: true };
      const [membership] = await run<Membership>(o.knex, selectMembership(o));
      const plan = planShares(membership!, this.#owned.size);
      this.#excess = plan.release;
      const floor = Math.floor(membership!.shards / Math.max(1, membership!.members));
      if (plan.release > 0) return { changed: true, settled: false };
      if (plan.take === 0 || !grow()) return { changed, settled: this.#owned.size >= floor };
      const taken = await run<{ shard: number; token: string }>(
        o.knex,
        acquireFreeShards(o, r.instanceId, r.leaseTtlMs, plan.take),
      );
      for (const t of taken) this.#owned.set(t.shard, Number(t.token));
      if (taken.length > 0) {
        changed = true;
        this.emit();
      }
      if (taken.length >= plan.take) return { changed, settled: true };
      if (attempt < TAKE_ATTEMPTS) await sleep(5 + Math.random() * 20);
    }
    return { changed, settled: false };
  }

  /** Tells the other relays that this one joined, gave shards back or left (see announceLeases). */
  async announce(): Promise<void> {
    await run(this.#o.knex, announceLeases(this.#o, this.#r.instanceId));
  }

  async #renew(): Promise<void> {
    if (this.#owned.size === 0) return;
    const r = this.#r;
    const shards = [...this.#owned.keys()];
    const kept = await run<{ name: string }>(
      this.#o.knex,
      renewLeases(
        this.#o,
        r.instanceId,
        shards.map(shardLeaseName),
        shards.map((s) => this.#owned.get(s)!),
        r.leaseTtlMs,
      ),
    );
    const keptNames = new Set(kept.map((k) => k.name));
    const lost = shards.filter((s) => !keptNames.has(shardLeaseName(s)));
    for (const shard of lost) this.#owned.delete(shard);
    if (lost.length > 0) this.emit();
  }

  /**
   * Gives back up to the noted excess from this lane's shards, between its batches, so
   * a rebalance never fences the instance's own in-flight work.
   */
  async releaseExcess(lane: number): Promise<void> {
    if (this.#excess === 0) return;
    const giveUp = this.lane(lane)
      .sort(([a], [b]) => b - a)
      .slice(0, this.#excess);
    if (giveUp.length === 0) return;
    this.#excess -= giveUp.length;
    for (const [shard] of giveUp) this.#owned.delete(shard);
    await this.#release(giveUp);
    this.emit();
    await this.announce(); // whoever waits for these shards takes them now
  }

  /**
   * A mark missed rows of these shards, fenced by these tokens: that lease is gone, stop
   * relaying them at once. A shard the keeper took again meanwhile (a new token) stays.
   */
  drop(fenced: Iterable<OwnedShard>): void {
    for (const [shard, token] of fenced) if (this.#owned.get(shard) === token) this.#owned.delete(shard);
    this.emit();
  }

  /** At stop: every shard and the membership back at once, so others need not wait for expiry. */
  async releaseAll(): Promise<void> {
    const r = this.#r;
    const o = this.#o;
    const entries = [...this.#owned.entries()];
    this.#owned.clear();
    try {
      await this.#release(entries);
      await run(o.knex, releaseLeases(o, r.instanceId, [memberLeaseName(r.instanceId)], [this.#memberToken]));
    } finally {
      this.emit();
    }
  }

  emit(): void {
    this.#events.emit('relay:leases', { instanceId: this.#r.instanceId, owned: this.list() });
  }

  async #release(entries: OwnedShard[]): Promise<void> {
    if (entries.length === 0) return;
    const r = this.#r;
    const o = this.#o;
    await run(
      o.knex,
      releaseLeases(
        o,
        r.instanceId,
        entries.map(([shard]) => shardLeaseName(shard)),
        entries.map(([, token]) => token),
      ),
    );
  }
}
