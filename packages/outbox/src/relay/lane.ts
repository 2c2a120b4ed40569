import { asError, backoffDelay, isDatabaseOutage, OUTAGE_BACKOFF, sleep, type Wakeable } from '@eventual/core';
import { type ClaimedRow, claimBatch } from '../sql/claim.js';
import type { Fence } from '../sql/mark.js';
import { run } from '../sql/statement.js';
import type { RelayContext } from './context.js';
import { publishBatch } from './publish-batch.js';

/**
 * One lane's loop: (give back excess shards of the lane when due) -> claim a batch
 * from the lane's owned shards in id order -> publish -> mark under the fence ->
 * repeat; when a batch was not full, wait for a NOTIFY (`wakeable`) or the poll
 * interval. While the broker or the database is unreachable the lane backs off as a
 * whole and spends no message's attempt. Runs until `ctx.active()` turns false; the
 * batch in flight is always finished and marked first.
 */
export async function runLane(ctx: RelayContext, lane: number, wakeable: Wakeable): Promise<void> {
  let failures = 0;
  let unavailable = 0;
  while (ctx.active()) {
    try {
      const handled = await nextBatch(ctx, lane);
      failures = 0;
      if (handled === 'unavailable') {
        unavailable += 1;
        // Not cut short by NOTIFYs: with steady enqueue traffic they would make the lane
        // claim and fail to publish at the enqueue rate while the broker is away.
        await sleep(backoffDelay(unavailable, OUTAGE_BACKOFF), ctx.stopping);
        continue;
      }
      unavailable = 0;
      if (handled < ctx.r.batchSize && ctx.active()) await wakeable.wait(ctx.r.pollIntervalMs);
    } catch (error) {
      failures += 1;
      // One event per outage, not one per retry; other failures (a bug, a constraint)
      // are reported every time.
      if (failures === 1 || !isDatabaseOutage(error))
        ctx.events.emit('relay:error', { instanceId: ctx.r.instanceId, error: asError(error) });
      if (ctx.active()) await wakeable.wait(backoffDelay(failures, OUTAGE_BACKOFF));
    }
  }
}

/** One batch of the lane: how many rows it handled, or 'unavailable' when the broker is unreachable. */
async function nextBatch(ctx: RelayContext, lane: number): Promise<number | 'unavailable'> {
  const { r, o, leases } = ctx;
  await leases.releaseExcess(lane);
  const shards = leases.lane(lane);
  if (shards.length === 0) return 0;
  const fence: Fence = { owner: r.instanceId, shards: shards.map(([s]) => s), tokens: shards.map(([, t]) => t) };
  const rows = await run<ClaimedRow>(o.knex, claimBatch(o, fence.shards, r.batchSize));
  if (rows.length === 0) return 0;
  return (await publishBatch(ctx, rows, fence)) === 'unavailable' ? 'unavailable' : rows.length;
}
