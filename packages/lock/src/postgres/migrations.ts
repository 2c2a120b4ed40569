import { type Migration, type TableMigrationOptions, tableMigrations } from '@eventual/core';
import type { Knex } from 'knex';

/**
 * The lock tables and the functions that change them, as a knex migration source.
 *
 * - `<table>` `(name, fence)`: one row per lock name ever used; `fence` is the last
 *   token granted and only grows. The row is never deleted, so a token is never
 *   reused, whatever happens to the holders. Every change to a lock first takes this
 *   row's lock: changes to one lock are serialised, other locks are untouched.
 * - `<table>_holders` `(name, owner, token, mode, requests, expires_at)`: the live
 *   leases; one row per owner (re-entry adds to `requests`, the ids of the acquires
 *   it holds by; its length is the hold count). Expiry is on the server's clock.
 * - `<table>_waiters` `(id, name, owner, request, mode, channel, expires_at)`: the
 *   queue, in `id` order; a waiter's row expires unless its poll renews it, so a
 *   crashed waiter stops blocking the queue.
 *
 * The functions run in their caller's statement (one round trip). Under read
 * committed each statement inside a function sees what committed before it started,
 * so after taking the lock row every check reads the previous change's result; one
 * statement with CTEs would read a snapshot from before the wait for the row lock.
 * Times are `clock_timestamp()`, not `now()`, which is the start of the transaction.
 */
export function lockMigrations(options: TableMigrationOptions = {}): Knex.MigrationSource<Migration> {
  return tableMigrations(
    options,
    'locks',
    ({ qualified: locks, name, q }) => {
      const holders = q(`${name}_holders`);
      const waiters = q(`${name}_waiters`);
      const fn = (verb: string) => q(`${name}_${verb}`);
      return [
        `create table ${locks} (
          name text primary key,
          fence bigint not null default 0
        )`,
        `create table ${holders} (
          name text not null,
          owner text not null,
          token bigint not null,
          mode text not null check (mode in ('exclusive', 'shared')),
          requests text[] not null check (cardinality(requests) > 0),
          acquired_at timestamptz not null default clock_timestamp(),
          expires_at timestamptz not null,
          primary key (name, owner)
        )`,
        `create table ${waiters} (
          id bigserial primary key,
          name text not null,
          owner text not null,
          request text not null,
          mode text not null check (mode in ('exclusive', 'shared')),
          channel text not null,
          expires_at timestamptz not null,
          unique (name, request)
        )`,
        `create index "${name}_waiters_queue" on ${waiters} (name, id)`,
        // Wakes the waiters the lock can now be granted to, and only them: the head of
        // the queue if it is a writer and nobody holds the lock; if it is a reader, every
        // reader up to the first waiting writer, provided no writer holds it. One NOTIFY
        // per woken waiter, on its manager's channel, naming it: no herd.
        `create function ${fn('wake')}(p_name text) returns integer language plpgsql as $$
        declare
          v_now timestamptz := clock_timestamp();
          v_head ${waiters}%rowtype;
          v_first_writer bigint;
          v_woken integer := 0;
          v_waiter record;
        begin
          if exists (select 1 from ${holders} h where h.name = p_name and h.mode = 'exclusive' and h.expires_at > v_now) then
            return 0;
          end if;
          select * into v_head from ${waiters} w where w.name = p_name and w.expires_at > v_now order by w.id limit 1;
          if not found then
            return 0;
          end if;
          if v_head.mode = 'exclusive' then
            if exists (select 1 from ${holders} h where h.name = p_name and h.expires_at > v_now) then
              return 0;
            end if;
            perform pg_notify(v_head.channel, v_head.id::text);
            return 1;
          end if;
          select min(w.id) into v_first_writer from ${waiters} w
            where w.name = p_name and w.mode = 'exclusive' and w.expires_at > v_now;
          for v_waiter in
            select w.id, w.channel from ${waiters} w
            where w.name = p_name and w.mode = 'shared' and w.expires_at > v_now
              and w.id < coalesce(v_first_writer, 9223372036854775807)
            order by w.id
          loop
            perform pg_notify(v_waiter.channel, v_waiter.id::text);
            v_woken := v_woken + 1;
          end loop;
          return v_woken;
        end $$`,
        // One attempt at a lock: re-entry, a grant in queue order, or a place in the queue.
        `create function ${fn('acquire')}(
          p_name text, p_owner text, p_request text, p_mode text, p_ttl_ms bigint,
          p_wait boolean, p_channel text, p_wait_ttl_ms bigint
        ) returns table (granted boolean, token bigint, holds integer, waiter bigint, retry_ms integer)
        language plpgsql as $$
        declare
          v_now timestamptz;
          v_holder ${holders}%rowtype;
          v_waiter bigint;
          v_token bigint;
          v_blocked boolean;
          v_behind boolean;
        begin
          -- Take the lock's row (made on first use); only a grant writes it (fence + 1).
          perform 1 from ${locks} l where l.name = p_name for update;
          if not found then
            insert into ${locks} (name) values (p_name) on conflict (name) do nothing;
            perform 1 from ${locks} l where l.name = p_name for update;
          end if;
          v_now := clock_timestamp();
          -- Leases and places of the crashed: past their expiry they are nobody's.
          delete from ${holders} h where h.name = p_name and h.expires_at <= v_now;
          delete from ${waiters} w where w.name = p_name and w.expires_at <= v_now;
          -- Those deletes may have waited for a guarded transaction: a grant's TTL starts now.
          v_now := clock_timestamp();

          -- The owner holds it already: the same request again (its answer was lost)
          -- gets the same grant; a new request re-enters, ahead of the queue (waiting
          -- behind oneself would never end), except a shared hold asking for exclusive.
          select * into v_holder from ${holders} h where h.name = p_name and h.owner = p_owner;
          if found then
            if not (p_request = any(v_holder.requests)) then
              if v_holder.mode = 'shared' and p_mode = 'exclusive' then
                raise exception 'lock % is held shared by owner %: it cannot be re-entered exclusive (release the shared hold first)',
                  p_name, p_owner using errcode = 'EVL01';
              end if;
              v_holder.requests := v_holder.requests || p_request;
            end if;
            update ${holders} h
              set requests = v_holder.requests,
                  expires_at = greatest(h.expires_at, v_now + p_ttl_ms * interval '1 millisecond')
              where h.name = p_name and h.owner = p_owner;
            delete from ${waiters} w where w.name = p_name and w.request = p_request;
            return query select true, v_holder.token, cardinality(v_holder.requests), null::bigint, null::integer;
            return;
          end if;

          -- First come, first served: a writer waits for every holder and every waiter
          -- ahead of it; a reader only for a writer holding it or waiting ahead of it, so
          -- a waiting writer holds back the readers that come after it (no starvation).
          -- Without a place in the queue (tryAcquire, a first attempt) everyone waiting
          -- is ahead.
          select w.id into v_waiter from ${waiters} w where w.name = p_name and w.request = p_request;
          v_behind := exists (
            select 1 from ${waiters} w
            where w.name = p_name and (v_waiter is null or w.id < v_waiter) and (p_mode = 'exclusive' or w.mode = 'exclusive'));
          v_blocked := v_behind or exists (
            select 1 from ${holders} h where h.name = p_name and (p_mode = 'exclusive' or h.mode = 'exclusive'));

          if not v_blocked then
            update ${locks} l set fence = l.fence + 1 where l.name = p_name returning l.fence into v_token;
            insert into ${holders} (name, owner, token, mode, requests, expires_at)
              values (p_name, p_owner, v_token, p_mode, array[p_request], v_now + p_ttl_ms * interval '1 millisecond');
            if v_waiter is not null then
              delete from ${waiters} w where w.id = v_waiter;
            end if;
            return query select true, v_token, 1, null::bigint, null::integer;
            return;
          end if;

          if p_wait then
            if v_waiter is null then
              insert into ${waiters} (name, owner, request, mode, channel, expires_at)
                values (p_name, p_owner, p_request, p_mode, p_channel, v_now + p_wait_ttl_ms * interval '1 millisecond')
                returning id into v_waiter;
            else
              update ${waiters} w set expires_at = v_now + p_wait_ttl_ms * interval '1 millisecond' where w.id = v_waiter;
            end if;
          end if;
          -- Only leases in the way: when the first of them expires (a crashed holder never
          -- releases). Behind another waiter, no hint: every waiter would look at once.
          return query select false, null::bigint, null::integer, v_waiter,
            case when v_behind then null else (
              select greatest(0, ceil(extract(epoch from min(h.expires_at) - v_now) * 1000))::integer
              from ${holders} h where h.name = p_name and (p_mode = 'exclusive' or h.mode = 'exclusive'))
            end;
        end $$`,
        // Gives one hold back: the owner's lease, by token, while it has not expired.
        // The last hold deletes the lease and wakes the next waiters.
        `create function ${fn('release')}(p_name text, p_owner text, p_token bigint, p_request text)
        returns table (released boolean, holds integer)
        language plpgsql as $$
        declare
          v_requests text[];
        begin
          perform 1 from ${locks} l where l.name = p_name for update;
          select h.requests into v_requests from ${holders} h
            where h.name = p_name and h.owner = p_owner and h.token = p_token and h.expires_at > clock_timestamp();
          if not found or not (p_request = any(v_requests)) then
            return query select false, 0;
            return;
          end if;
          v_requests := array_remove(v_requests, p_request);
          if cardinality(v_requests) > 0 then
            update ${holders} h set requests = v_requests where h.name = p_name and h.owner = p_owner;
            return query select true, cardinality(v_requests);
            return;
          end if;
          delete from ${holders} h where h.name = p_name and h.owner = p_owner;
          perform ${fn('wake')}(p_name);
          return query select true, 0;
        end $$`,
        // An acquire gives up (timeout, abort): its place in the queue, and a hold it may
        // have been granted without hearing of it (the answer was lost); then wakes
        // whoever that lets through.
        `create function ${fn('cancel')}(p_name text, p_owner text, p_request text) returns void
        language plpgsql as $$
        begin
          perform 1 from ${locks} l where l.name = p_name for update;
          delete from ${waiters} w where w.name = p_name and w.request = p_request;
          update ${holders} h set requests = array_remove(h.requests, p_request)
            where h.name = p_name and h.owner = p_owner and p_request = any(h.requests) and cardinality(h.requests) > 1;
          delete from ${holders} h where h.name = p_name and h.owner = p_owner and h.requests = array[p_request];
          perform ${fn('wake')}(p_name);
        end $$`,
      ];
    },
    ({ name, q }) => [
      `drop table if exists ${q(`${name}_holders`)}`,
      `drop table if exists ${q(`${name}_waiters`)}`,
      ...['acquire', 'release', 'cancel', 'wake'].map((verb) => `drop function if exists ${q(`${name}_${verb}`)}`),
    ],
  );
}
