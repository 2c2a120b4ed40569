import type { Statement } from './statement.js';

/**
 * Claims one scheduled run of a job for the whole cluster, in a lease table
 * `(name, owner, token, expires_at, last_slot)` (the outbox's `<table>_leases`).
 * node-cron asks every instance about the same slot (the scheduled time, identical on
 * every instance); the first to move `last_slot` forward wins it, and only while no
 * other live holder is still running the job (its lease has not expired), so runs
 * never overlap and a crashed holder blocks nothing beyond its lease. Returns the
 * fencing token on a win.
 */
export function claimRun(leases: string, job: string, owner: string, slot: Date, ttlMs: number): Statement {
  return {
    name: 'scheduler.claimRun',
    sql: `
      insert into ${leases} as l (name, owner, token, expires_at, last_slot)
      values (?, ?, 1, now() + ?::bigint * interval '1 millisecond', ?)
      on conflict (name) do update
        set owner = excluded.owner, token = l.token + 1, expires_at = excluded.expires_at, last_slot = excluded.last_slot
        where (l.last_slot is null or l.last_slot < excluded.last_slot)
          and (l.owner is null or l.owner = excluded.owner or l.expires_at <= now())
      returning token`,
    bindings: [`cron:${job}`, owner, ttlMs, slot],
  };
}

/** Ends a run: frees the lease at once if this owner still holds it with this token. */
export function finishRun(leases: string, job: string, owner: string, token: number): Statement {
  return {
    name: 'scheduler.finishRun',
    sql: `update ${leases} set owner = null, expires_at = '-infinity' where name = ? and owner = ? and token = ?`,
    bindings: [`cron:${job}`, owner, token],
  };
}
