export interface Membership {
  members: number;
  shards: number;
  /** Live shard leases per owner (any order). */
  held: number[];
}

/**
 * Every instance computes the same split from the same counts: hold between
 * floor(shards / members) and ceiling(shards / members).
 * - Above the ceiling: give the excess back.
 * - While some member is below the floor ("starving"), free shards are left to the
 *   members below the floor; and when none is free, an instance above the floor gives
 *   one back. Without that rule an instance that just gave a shard back could take it
 *   again at once, and the split could oscillate instead of converging.
 * - Otherwise take free shards up to the ceiling.
 * Converges to every instance within one shard of every other.
 */
export function planShares({ members, shards, held }: Membership, mine: number): { take: number; release: number } {
  const live = Math.max(1, members);
  const floor = Math.floor(shards / live);
  const ceiling = Math.ceil(shards / live);
  const free = shards - held.reduce((a, b) => a + b, 0);
  if (mine > ceiling) return { take: 0, release: mine - ceiling };
  const starving = floor > 0 && held.filter((n) => n >= floor).length < live;
  if (free > 0) {
    if (mine < floor) return { take: Math.min(ceiling - mine, free), release: 0 };
    return { take: starving ? 0 : Math.min(ceiling - mine, free), release: 0 };
  }
  if (starving && mine > floor) return { take: 0, release: 1 };
  return { take: 0, release: 0 };
}
