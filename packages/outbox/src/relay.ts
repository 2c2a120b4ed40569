import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { type BackoffPolicy, backoffDelay } from './backoff.js';
import { InvalidOptionError, PublishError, type PublishErrorKind } from './errors.js';
import type { Message } from './message.js';

import type { Outbox } from './outbox.js';
import type { OutboundRecord, Publisher } from './publisher.js';
import { type ClaimedRow, claimBatch } from './sql/claim.js';
import {
  acquireFreeShards,
  acquireLease,
  memberLeaseName,
  reclaimOwnShards,
  releaseLeases,
  renewLeases,
  selectMembership,
  shardLeaseName,
} from './sql/leases.js';
import { type Fence, markFailed, markPublished } from './sql/mark.js';
import { run } from './sql/statement.js';
import { type BackoffOptions, backoff, integer, knownKeys, nonEmptyString, oneOf } from './validate.js';
import { Wakeable } from './wakeable.js';

export interface RelayOptions {
  /** Where messages go; `createKafkaPublisher({ kafka })` for Kafka. The relay does not close it. */
  publisher: Publisher;
  /**
   * Names this relay in the shard leases; unique among the relays running at one time.
   * Give a name that is stable across restarts of the same deployment slot (a pod name
   * from a StatefulSet, a host name), and a relay restarted
   * after a crash takes its shards back at once under a new fencing token instead of
   * waiting for its old leases to expire (`leaseTtlMs`). Default `<hostname>-<pid>-<random>`,
   * new for every process.
   */
  instanceId?: string;
  /** Messages per claim and publish. Default 500. */
  batchSize?: number;
  /**
   * Batches in flight at once. The owned shards are split into this many lanes
   * (shard mod lanes), each a loop of its own (claim, publish, mark), so one lane's
   * database round trips overlap another's publish. A key lives in one shard, so in
   * one lane: per-key order holds. Default 2.
   */
  lanes?: number;
  /** Fallback poll when no NOTIFY arrives. Default 1,000 ms. */
  pollIntervalMs?: number;
  /** Shard lease time to live; a crashed instance's shards move on within it. Default 15,000 ms. */
  leaseTtlMs?: number;
  /** Publication attempts before a message goes `dead`. Default 10. */
  maxAttempts?: number;
  /** Per-message retry delay. Default 1 s doubling to 5 min, 50% jitter. */
  backoff?: BackoffOptions;
  /** What to do with a published row: keep it as `published` (default) or delete it. */
  onPublished?: 'mark' | 'delete';
  /** LISTEN for enqueue notifications (a latency hint; polling stays the truth). Default true. */
  listen?: boolean;
  /** How long `stop()` waits for the in-flight batch before giving its leases up anyway. Default 30,000 ms. */
  stopTimeoutMs?: number;
}

interface ResolvedRelayOptions {
  publisher: Publisher;
  instanceId: string;
  batchSize: number;
  lanes: number;
  pollIntervalMs: number;
  leaseTtlMs: number;
  maxAttempts: number;
  backoff: BackoffPolicy;
  onPublished: 'mark' | 'delete';
  listen: boolean;
  stopTimeoutMs: number;
}

function resolveRelayOptions(options: RelayOptions): ResolvedRelayOptions {
  if (options === null || typeof options !== 'object')
    throw new InvalidOptionError('createRelay needs an options object with at least { publisher }');
  knownKeys('createRelay', options, [
    'publisher',
    'instanceId',
    'batchSize',
    'lanes',
    'pollIntervalMs',
    'leaseTtlMs',
    'maxAttempts',
    'backoff',
    'onPublished',
    'listen',
    'stopTimeoutMs',
  ]);
  const { publisher } = options;
  if (!publisher || typeof publisher.publish !== 'function' || typeof publisher.close !== 'function') {
    throw new InvalidOptionError(
      'publisher must implement { publish(records), close() }, e.g. createKafkaPublisher({ kafka })',
    );
  }
  return {
    publisher,
    instanceId: nonEmptyString(
      'instanceId',
      options.instanceId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    ),
    batchSize: integer('batchSize', options.batchSize ?? 500, 1, 10_000),
    lanes: integer('lanes', options.lanes ?? 2, 1, 64),
    pollIntervalMs: integer('pollIntervalMs', options.pollIntervalMs ?? 1_000, 10, 3_600_000),
    leaseTtlMs: integer('leaseTtlMs', options.leaseTtlMs ?? 15_000, 300, 3_600_000),
    maxAttempts: integer('maxAttempts', options.maxAttempts ?? 10, 1, 1_000),
    backoff: backoff('backoff', options.backoff, { initialMs: 1_000, maxMs: 300_000, factor: 2, jitter: 0.5 }),
    onPublished: oneOf('onPublished', options.onPublished ?? 'mark', ['mark', 'delete']),
    listen: options.listen ?? true,
    stopTimeoutMs: integer('stopTimeoutMs', options.stopTimeoutMs ?? 30_000, 0, 3_600_000),
  };
}

/** While the broker is unreachable the whole relay backs off (no attempt is counted). */
const UNAVAILABLE_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 5_000, factor: 2, jitter: 0.5 };

export type RelayState = 'idle' | 'running' | 'stopping' | 'stopped';

export interface Relay {
  readonly instanceId: string;
  readonly state: RelayState;
  /** Shards this instance holds a lease on right now. */
  ownedShards(): number[];
  start(): Promise<void>;
  /** Finishes (publishes and marks) the in-flight batches, then gives its leases back. */
  stop(): Promise<void>;
  /** Asks the loop to look for work now (what a NOTIFY does). */
  wake(): void;
}

/**
 * Moves pending messages to the publisher, shard by shard, under leases.
 *
 * One loop per lane (a fixed subset of the shards, shard mod lanes): (give back
 * excess shards of the lane when due) -> claim a batch from the lane's owned shards in
 * id order -> publish -> mark published / failed under the fence -> repeat, waiting
 * for a NOTIFY or the poll interval when there is nothing to do. A separate timer
 * renews leases so a slow publish cannot let them expire; a lane only gives up its own
 * shards, between its batches, so a rebalance never fences the instance's own
 * in-flight work.
 */
export function createRelay(outbox: Outbox, options: RelayOptions): Relay {
  const r = resolveRelayOptions(options);
  const o = outbox.options;
  const { events, counters } = outbox.internals;
  const owned = new Map<number, number>(); // shard -> token
  const wakeables = Array.from({ length: r.lanes }, () => new Wakeable());
  const wakeAll = () => {
    for (const w of wakeables) w.wake();
  };
  /**
   * A NOTIFY from enqueue names the shards it wrote: wake only their lanes, so an idle
   * lane does not run a claim for another lane's message. Any other payload (a
   * requeue, a prepared message's commit) wakes every lane.
   */
  const wakeFor = (payload: string | undefined) => {
    if (!payload || !/^\d+(,\d+)*$/.test(payload)) return wakeAll();
    for (const shard of payload.split(',')) wakeables[Number(shard) % r.lanes]!.wake();
  };
  let state: RelayState = 'idle';
  let loop: Promise<void> | undefined;
  let keeper: NodeJS.Timeout | undefined;
  let excess = 0;
  let memberToken = 0;
  let listener:
    | { conn: ListenConnection; onNotify: (n: { payload?: string }) => void; onError: (e: Error) => void }
    | undefined;

  const emitLeases = () => events.emit('relay:leases', { owned: [...owned.keys()].sort((a, b) => a - b) });
  const fail = (error: unknown) =>
    events.emit('relay:error', { error: error instanceof Error ? error : new Error(String(error)) });

  /** Renews what we hold, then takes free shards up to a fair share, or notes the excess. */
  async function keepLeases(): Promise<void> {
    const memberName = memberLeaseName(r.instanceId);
    const [member] = await run<{ token: string }>(o.knex, acquireLease(o, memberName, r.instanceId, r.leaseTtlMs));
    if (member) memberToken = Number(member.token);
    if (owned.size > 0) {
      const shards = [...owned.keys()];
      const kept = await run<{ name: string; token: string }>(
        o.knex,
        renewLeases(
          o,
          r.instanceId,
          shards.map(shardLeaseName),
          shards.map((s) => owned.get(s)!),
          r.leaseTtlMs,
        ),
      );
      const keptNames = new Set(kept.map((k) => k.name));
      const lost = shards.filter((s) => !keptNames.has(shardLeaseName(s)));
      for (const shard of lost) owned.delete(shard);
      if (lost.length > 0) emitLeases();
    }
    if (state !== 'running') return;
    const [membership] = await run<Membership>(o.knex, selectMembership(o));
    const plan = planShares(membership!, owned.size);
    if (plan.take > 0) {
      const taken = await run<{ shard: number; token: string }>(
        o.knex,
        acquireFreeShards(o, r.instanceId, r.leaseTtlMs, plan.take),
      );
      for (const t of taken) owned.set(t.shard, Number(t.token));
      if (taken.length > 0) {
        emitLeases();
        wakeAll();
      }
    }
    excess = plan.release;
  }

  /** Gives back up to `excess` shards of this lane (none of them has a batch in flight). */
  async function releaseExcess(lane: number): Promise<void> {
    if (excess === 0) return;
    const giveUp = laneShards(lane)
      .sort(([a], [b]) => b - a)
      .slice(0, excess);
    excess -= giveUp.length;
    for (const [shard] of giveUp) owned.delete(shard);
    await release(giveUp);
    emitLeases();
  }

  async function release(entries: Array<[shard: number, token: number]>): Promise<void> {
    if (entries.length === 0) return;
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

  async function publishAndMark(rows: ClaimedRow[], fence: Fence): Promise<PublishErrorKind | undefined> {
    const started = Date.now();
    const records: OutboundRecord[] = rows.map((row) => ({
      id: row.id,
      topic: row.topic,
      key: row.key,
      value: row.payload,
      headers: row.headers,
    }));
    try {
      await r.publisher.publish(records);
    } catch (error) {
      const publishError =
        error instanceof PublishError
          ? error
          : new PublishError(
              'retriable',
              `publisher failed: ${error instanceof Error ? error.message : String(error)}`,
              error,
            );
      counters.failed += rows.length;
      if (publishError.kind === 'unavailable') {
        events.emit('relay:failed', {
          messageIds: rows.map((x) => x.id),
          error: publishError,
          kind: 'unavailable',
          retryInMs: 0,
        });
        return 'unavailable';
      }
      if (publishError.kind === 'permanent' && rows.length > 1) {
        // One record can spoil a whole batch (e.g. too large): publish one by one to
        // find it, so only it goes dead and the rest are published.
        for (const row of rows) {
          if ((await publishAndMark([row], fence)) === 'unavailable') return 'unavailable';
        }
        return undefined;
      }
      const delays = rows.map((row) => backoffDelay(row.attempts + 1, r.backoff));
      const marked = await run<{ id: string; topic: string; state: string; attempts: number }>(
        o.knex,
        markFailed(
          o,
          rows.map((x) => x.id),
          delays,
          publishError.message,
          publishError.kind === 'permanent',
          r.maxAttempts,
          fence,
        ),
      );
      events.emit('relay:failed', {
        messageIds: rows.map((x) => x.id),
        error: publishError,
        kind: publishError.kind,
        retryInMs: Math.min(...delays),
      });
      for (const m of marked) {
        if (m.state !== 'dead') continue;
        counters.dead += 1;
        events.emit('relay:dead', {
          messageId: m.id,
          topic: m.topic,
          error: publishError.message,
          attempts: m.attempts,
        });
      }
      return publishError.kind;
    }
    const marked = await run<{ id: string }>(
      o.knex,
      markPublished(
        o,
        rows.map((x) => x.id),
        fence,
        r.onPublished,
      ),
    );
    counters.published += marked.length;
    if (marked.length < rows.length) {
      const markedIds = new Set(marked.map((m) => m.id));
      const lost = rows.filter((x) => !markedIds.has(x.id));
      counters.fenced += lost.length;
      // The mark only misses rows of shards whose lease we no longer hold: stop
      // relaying them at once instead of republishing until the next renewal notices.
      for (const shard of new Set(lost.map((x) => x.shard))) {
        owned.delete(shard);
        events.emit('relay:fenced', { shard, messageIds: lost.filter((x) => x.shard === shard).map((x) => x.id) });
      }
      emitLeases();
    }
    if (!events.listens('relay:published')) return undefined;
    const markedIds = new Set(marked.map((m) => m.id));
    const published: Message[] = rows
      .filter((x) => markedIds.has(x.id))
      .map((x) => ({
        id: x.id,
        topic: x.topic,
        key: x.key,
        type: x.type,
        payload: JSON.parse(x.payload),
        headers: x.headers,
      }));
    if (published.length > 0) events.emit('relay:published', { messages: published, durationMs: Date.now() - started });
    return undefined;
  }

  /** The owned shards of a lane, with their tokens. */
  function laneShards(lane: number): Array<[shard: number, token: number]> {
    return [...owned.entries()].filter(([shard]) => shard % r.lanes === lane);
  }

  /** One batch of the lane: how many rows it handled, or 'unavailable' when the broker is unreachable. */
  async function iterate(lane: number): Promise<number | 'unavailable'> {
    await releaseExcess(lane);
    const shards = laneShards(lane);
    if (shards.length === 0) return 0;
    const fence: Fence = { owner: r.instanceId, shards: shards.map(([s]) => s), tokens: shards.map(([, t]) => t) };
    const rows = await run<ClaimedRow>(o.knex, claimBatch(o, fence.shards, r.batchSize));
    if (rows.length === 0) return 0;
    return (await publishAndMark(rows, fence)) === 'unavailable' ? 'unavailable' : rows.length;
  }

  async function runLoop(lane: number): Promise<void> {
    const wakeable = wakeables[lane]!;
    let errorStreak = 0;
    let unavailableStreak = 0;
    while (state === 'running') {
      if (lane === 0) await ensureListening();
      try {
        const handled = await iterate(lane);
        errorStreak = 0;
        if (handled === 'unavailable') {
          unavailableStreak += 1;
          await wakeable.wait(backoffDelay(unavailableStreak, UNAVAILABLE_BACKOFF));
          continue;
        }
        unavailableStreak = 0;
        if (handled < r.batchSize && state === 'running') await wakeable.wait(r.pollIntervalMs);
      } catch (error) {
        fail(error);
        errorStreak += 1;
        if (state === 'running') await wakeable.wait(backoffDelay(errorStreak, UNAVAILABLE_BACKOFF));
      }
    }
  }

  async function ensureListening(): Promise<void> {
    if (!r.listen || listener || state !== 'running') return;
    try {
      const conn = (await o.knex.client.acquireConnection()) as ListenConnection;
      const onNotify = (notification: { payload?: string }) => wakeFor(notification.payload);
      const onError = (error: Error) => {
        fail(error);
        dropListener(true);
      };
      conn.on('notification', onNotify);
      conn.on('error', onError);
      listener = { conn, onNotify, onError };
      await conn.query(`listen "${o.channel}"`);
    } catch (error) {
      fail(error);
      dropListener(true);
    }
  }

  function dropListener(broken: boolean): void {
    const current = listener;
    listener = undefined;
    if (!current) return;
    current.conn.removeListener('notification', current.onNotify);
    current.conn.removeListener('error', current.onError);
    if (broken) (current.conn as { __knex__disposed?: unknown }).__knex__disposed = 'listen connection failed';
    Promise.resolve(o.knex.client.releaseConnection(current.conn)).catch(() => {});
  }

  const scheduleKeeper = () => {
    keeper = setTimeout(
      async () => {
        try {
          await keepLeases();
        } catch (error) {
          fail(error);
        }
        if (state === 'running') scheduleKeeper();
      },
      Math.max(100, Math.floor(r.leaseTtlMs / 3)),
    );
  };

  return {
    instanceId: r.instanceId,
    get state() {
      return state;
    },
    ownedShards: () => [...owned.keys()].sort((a, b) => a - b),
    async start() {
      if (state !== 'idle')
        throw new InvalidOptionError(
          `relay ${r.instanceId} cannot start: it is ${state} (create a new relay to start again)`,
        );
      state = 'running';
      const reclaimed = await run<{ shard: number; token: string }>(
        o.knex,
        reclaimOwnShards(o, r.instanceId, r.leaseTtlMs),
      );
      for (const t of reclaimed) owned.set(t.shard, Number(t.token));
      await keepLeases();
      scheduleKeeper();
      loop = Promise.all(wakeables.map((_, lane) => runLoop(lane))).then(() => {});
    },
    async stop() {
      if (state === 'idle') {
        state = 'stopped';
        return;
      }
      if (state !== 'running') return loop;
      state = 'stopping';
      clearTimeout(keeper);
      wakeAll();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([loop, new Promise<void>((resolve) => (timer = setTimeout(resolve, r.stopTimeoutMs)))]);
      clearTimeout(timer);
      if (listener) {
        await listener.conn.query(`unlisten "${o.channel}"`).catch(() => {});
        dropListener(false);
      }
      const entries = [...owned.entries()];
      owned.clear();
      try {
        await release(entries);
        await run(o.knex, releaseLeases(o, r.instanceId, [memberLeaseName(r.instanceId)], [memberToken]));
      } catch (error) {
        fail(error); // the leases expire on their own within leaseTtlMs
      }
      emitLeases();
      state = 'stopped';
    },
    wake: wakeAll,
  };
}

interface Membership {
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

/** The pg client knex hands out, as far as LISTEN needs it. */
interface ListenConnection {
  query(sql: string): Promise<unknown>;
  on(event: 'notification', listener: (notification: { payload?: string }) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  removeListener(event: string, listener: (...args: never[]) => void): void;
}
