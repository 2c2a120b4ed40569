import { backoffDelay, errorMessage } from '@eventual/core';
import { PublishError, type PublishErrorKind } from '../errors.js';
import { claimedToMessage } from '../message.js';
import type { OutboundRecord } from '../publisher.js';
import type { ClaimedRow } from '../sql/claim.js';
import { type Fence, markFailed, markPublished } from '../sql/mark.js';
import { run } from '../sql/statement.js';
import { observeSend } from '../telemetry.js';
import type { RelayContext } from './context.js';

/**
 * Publishes one claimed batch and marks its rows under the fence: published (or
 * deleted) once the broker acknowledged them, else one more attempt with a jittered
 * retry delay, or `dead` after `maxAttempts` or on a permanent error. Resolves the
 * publish error's kind, or undefined on success; 'unavailable' (the broker is not
 * reachable) marks nothing and spends no attempt: the lane backs off as a whole.
 */
export async function publishBatch(
  ctx: RelayContext,
  rows: ClaimedRow[],
  fence: Fence,
): Promise<PublishErrorKind | undefined> {
  const started = Date.now();
  const records: OutboundRecord[] = rows.map((row) => ({
    id: row.id,
    topic: row.topic,
    key: row.key,
    value: row.payload,
    headers: row.headers,
  }));
  const observed = observeSend(rows);
  try {
    await (observed ? observed.publishing(() => ctx.r.publisher.publish(records)) : ctx.r.publisher.publish(records));
  } catch (error) {
    const failure =
      error instanceof PublishError
        ? error
        : new PublishError('retriable', `publisher failed: ${errorMessage(error)}`, error);
    observed?.end({ error: failure, kind: failure.kind });
    return publishFailed(ctx, rows, fence, failure);
  }
  const downtimeMs = ctx.brokerOutage.end();
  if (downtimeMs !== undefined) ctx.events.emit('relay:brokerAvailable', { instanceId: ctx.r.instanceId, downtimeMs });
  try {
    const fenced = await markBatchPublished(ctx, rows, fence, started);
    observed?.end({ fenced });
  } catch (error) {
    observed?.end({ fenced: 0, markError: error });
    throw error;
  }
  return undefined;
}

async function publishFailed(
  ctx: RelayContext,
  rows: ClaimedRow[],
  fence: Fence,
  failure: PublishError,
): Promise<PublishErrorKind | undefined> {
  const { r, o, events, counters } = ctx;
  const instanceId = r.instanceId;
  const messageIds = rows.map((x) => x.id);
  counters.failed += rows.length;
  if (failure.kind === 'unavailable') {
    if (ctx.brokerOutage.begin()) events.emit('relay:brokerUnavailable', { instanceId, error: failure });
    return 'unavailable';
  }
  if (failure.kind === 'permanent' && rows.length > 1) {
    // One record can spoil a whole batch (e.g. too large): publish one by one to find
    // it, so only it goes dead and the rest are published.
    for (const row of rows) {
      if ((await publishBatch(ctx, [row], fence)) === 'unavailable') return 'unavailable';
    }
    return undefined;
  }
  const delays = rows.map((row) => backoffDelay(row.attempts + 1, r.backoff));
  const marked = await run<{ id: string; topic: string; state: string; attempts: number }>(
    o.knex,
    markFailed(o, messageIds, delays, failure.message, failure.kind === 'permanent', r.maxAttempts, fence),
  );
  events.emit('relay:failed', {
    instanceId,
    messageIds,
    error: failure,
    kind: failure.kind === 'permanent' ? 'permanent' : 'retriable',
    retryInMs: Math.min(...delays),
  });
  for (const m of marked) {
    if (m.state !== 'dead') continue;
    counters.dead += 1;
    events.emit('relay:dead', {
      instanceId,
      messageId: m.id,
      topic: m.topic,
      error: failure.message,
      attempts: m.attempts,
    });
  }
  return failure.kind;
}

/** Marks the batch published under the fence; resolves how many rows the fence refused. */
async function markBatchPublished(
  ctx: RelayContext,
  rows: ClaimedRow[],
  fence: Fence,
  started: number,
): Promise<number> {
  const { r, o, events, counters, leases } = ctx;
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
  const markedIds = new Set(marked.map((m) => m.id));
  if (marked.length < rows.length) {
    const lost = rows.filter((x) => !markedIds.has(x.id));
    counters.fenced += lost.length;
    // The mark only misses rows of shards whose lease we no longer hold: stop relaying
    // them at once instead of republishing until the next renewal notices.
    const shards = new Set(lost.map((x) => x.shard));
    for (const shard of shards) {
      const messageIds = lost.filter((x) => x.shard === shard).map((x) => x.id);
      events.emit('relay:fenced', { instanceId: r.instanceId, shard, messageIds });
    }
    leases.drop([...shards].map((shard): [number, number] => [shard, fence.tokens[fence.shards.indexOf(shard)]!]));
  }
  const fenced = rows.length - marked.length;
  if (!events.listens('relay:published')) return fenced;
  const published = rows.filter((x) => markedIds.has(x.id)).map(claimedToMessage);
  if (published.length > 0)
    events.emit('relay:published', { instanceId: r.instanceId, messages: published, durationMs: Date.now() - started });
  return fenced;
}
