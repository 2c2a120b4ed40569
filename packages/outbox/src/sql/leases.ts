import type { ResolvedOutboxOptions } from '../options.js';
import type { Statement } from './statement.js';

/**
 * Leases are rows `(name, owner, token, expires_at)`: a lock that cannot outlive a
 * crashed holder, because it simply expires. `token` only ever grows; every write a
 * holder makes under a lease re-checks (owner, token, expires_at) in the same
 * statement (see mark.ts), so a holder that was paused past its expiry and replaced
 * can never write again: that is the fencing token.
 *
 * Names: 'relay:shard:N' (a relay shard), 'relay:member:ID' (a live relay instance,
 * used to compute fair shares), 'cron:JOB' (a scheduled job, see run-coordinator.ts).
 */

export const shardLeaseName = (shard: number) => `relay:shard:${shard}`;
export const memberLeaseName = (owner: string) => `relay:member:${owner}`;

/**
 * Takes a lease that is free or expired, or renews one this owner holds. The token
 * grows whenever the lease changes hands or had expired, so writes fenced by the
 * previous token fail. Concurrent takers serialise on the row (or on the unique
 * index for a new row); the loser's WHERE no longer matches and it gets no row.
 */
export function acquireLease(o: ResolvedOutboxOptions, name: string, owner: string, ttlMs: number): Statement {
  return {
    name: 'outbox.acquireLease',
    sql: `
      insert into ${o.tables.leases} as l (name, owner, token, expires_at)
      values (?, ?, 1, now() + ?::bigint * interval '1 millisecond')
      on conflict (name) do update
        set owner = excluded.owner,
            token = case when l.owner = excluded.owner and l.expires_at > now() then l.token else l.token + 1 end,
            expires_at = excluded.expires_at
        where l.owner = excluded.owner or l.owner is null or l.expires_at <= now()
      returning token`,
    bindings: [name, owner, ttlMs],
  };
}

/**
 * Takes up to `limit` free or expired shard leases, in an order each member derives
 * from the membership, so members that start together ask for different shards: the
 * member of rank r (by name) among N live members first asks for the shards s with
 * s mod N = r, then r + 1, and so on. When they all see the same membership their
 * picks do not overlap and each gets its share in one statement; two random picks
 * overlapped, the loser got fewer than it asked for, and the shortfall stayed
 * unowned until the next keeper round. (A member that does not see the others yet
 * may still collide; the keeper retries a shortfall at once, see shard-leases.ts.)
 * The rows are written in name order: two instances upserting overlapping sets in
 * different orders deadlocked (bench/ saw relay.start() fail with "deadlock detected");
 * in one order the later one just waits and skips what the other took.
 */
export function acquireFreeShards(o: ResolvedOutboxOptions, owner: string, ttlMs: number, limit: number): Statement {
  return {
    name: 'outbox.acquireFreeShards',
    sql: `
      with me as (
        select greatest(count(*), 1)::int as members, count(*) filter (where name < ?)::int as rank
        from ${o.tables.leases} where name like 'relay:member:%' and expires_at > now()
      ), candidates as (
        select 'relay:shard:' || s.shard as name
        from generate_series(0, (select shard_count from ${o.tables.settings}) - 1) as s(shard)
        cross join me
        left join ${o.tables.leases} l on l.name = 'relay:shard:' || s.shard
        where l.name is null or l.owner is null or l.expires_at <= now()
        order by (s.shard % me.members - me.rank % me.members + me.members) % me.members, s.shard
        limit ?
      )
      insert into ${o.tables.leases} as l (name, owner, token, expires_at)
      select name, ?, 1, now() + ?::bigint * interval '1 millisecond' from candidates order by name
      on conflict (name) do update
        set owner = excluded.owner, token = l.token + 1, expires_at = excluded.expires_at
        where l.owner is null or l.expires_at <= now()
      returning substr(name, length('relay:shard:') + 1)::int as shard, token`,
    bindings: [memberLeaseName(owner), limit, owner, ttlMs],
  };
}

/**
 * Tells the other relays (on the outbox channel, which they LISTEN to) that this one
 * joined, gave shards back or left, so their keepers act at once instead of at their
 * next round. A hint like every NOTIFY: without LISTEN the keepers' rounds still get there.
 */
export function announceLeases(o: ResolvedOutboxOptions, owner: string): Statement {
  return {
    name: 'outbox.announceLeases',
    sql: 'select pg_notify(?, ?)',
    bindings: [o.channel, `${LEASES_NOTICE}${owner}`],
  };
}

/** The NOTIFY payload prefix of `announceLeases`, followed by the announcing instance id. */
export const LEASES_NOTICE = 'relay:leases:';

/**
 * At start: takes back, under a new token, the shard leases a previous life of this
 * same instance id still holds (a restart after a crash, with a stable id such as a
 * pod name). Without it a restarted relay waits out its own leases (the TTL) before
 * it can relay them again, and one that crashes more often than that never does.
 * The new token fences anything the previous life might still try to mark.
 */
export function reclaimOwnShards(o: ResolvedOutboxOptions, owner: string, ttlMs: number): Statement {
  return {
    name: 'outbox.reclaimOwnShards',
    sql: `
      update ${o.tables.leases}
      set token = token + 1, expires_at = now() + ?::bigint * interval '1 millisecond'
      where name like 'relay:shard:%' and owner = ? and expires_at > now()
      returning substr(name, length('relay:shard:') + 1)::int as shard, token`,
    bindings: [ttlMs, owner],
  };
}

/** Extends the leases this owner still holds with these tokens; returns the ones kept. */
export function renewLeases(
  o: ResolvedOutboxOptions,
  owner: string,
  names: string[],
  tokens: number[],
  ttlMs: number,
): Statement {
  return {
    name: 'outbox.renewLeases',
    sql: `
      update ${o.tables.leases} l
      set expires_at = now() + ?::bigint * interval '1 millisecond'
      from unnest(?::text[], ?::bigint[]) as f(name, token)
      where l.name = f.name and l.owner = ? and l.token = f.token and l.expires_at > now()
      returning l.name, l.token`,
    bindings: [ttlMs, names, tokens, owner],
  };
}

/** Gives leases back at once (graceful stop, rebalancing) so others need not wait for expiry. */
export function releaseLeases(o: ResolvedOutboxOptions, owner: string, names: string[], tokens: number[]): Statement {
  return {
    name: 'outbox.releaseLeases',
    sql: `
      update ${o.tables.leases} l
      set owner = null, expires_at = '-infinity'
      from unnest(?::text[], ?::bigint[]) as f(name, token)
      where l.name = f.name and l.owner = ? and l.token = f.token
      returning l.name`,
    bindings: [names, tokens, owner],
  };
}

/**
 * Live relay members, the shard count and how many live shard leases each owner
 * holds: enough for every instance to compute the same fair split on its own.
 */
export function selectMembership(o: ResolvedOutboxOptions): Statement {
  return {
    name: 'outbox.selectMembership',
    sql: `
      select
        (select count(*) from ${o.tables.leases} where name like 'relay:member:%' and expires_at > now())::int as members,
        (select shard_count from ${o.tables.settings}) as shards,
        coalesce((
          select json_agg(n) from (
            select count(*)::int as n from ${o.tables.leases}
            where name like 'relay:shard:%' and owner is not null and expires_at > now()
            group by owner
          ) per_owner
        ), '[]'::json) as held`,
    bindings: [],
  };
}

/**
 * Lease recovery: removes member rows long expired (instances that crashed) and
 * frees shard leases whose expiry passed, so the table stays small and readable.
 */
export function pruneLeases(o: ResolvedOutboxOptions, graceMs: number): Statement {
  return {
    name: 'outbox.pruneLeases',
    sql: `
      with pruned as (
        delete from ${o.tables.leases}
        where name like 'relay:member:%' and expires_at < now() - ?::bigint * interval '1 millisecond'
        returning 1
      ), freed as (
        update ${o.tables.leases} set owner = null
        where name like 'relay:shard:%' and owner is not null and expires_at <= now()
        returning 1
      )
      select (select count(*) from pruned)::int as pruned, (select count(*) from freed)::int as freed`,
    bindings: [graceMs],
  };
}
