import { asError, backoffDelay, isDatabaseOutage, OUTAGE_BACKOFF, type TypedEmitter, Wakeable } from '@eventual/core';
import { LockAbortedError, LockTimeoutError } from './errors.js';
import type { ResolvedAcquire } from './options.js';
import type { LockEventMap } from './types.js';
import type { WakeCause, WakeRegistry } from './wake-registry.js';

/** One attempt's answer from a backend: granted, or the place in the queue and when to look again. */
export interface AttemptOutcome<G> {
  /** The grant, when the lock was granted. */
  grant?: G;
  /** The waiter's place in the queue (the id a targeted wake-up names). */
  waiterId?: string;
  /**
   * When only leases stand in the way: ms until the first of them expires (a crashed
   * holder never releases). Undefined behind another waiter: it waits for its turn.
   */
  retryInMs?: number;
}

/** What the waiting loop needs from a backend and its manager. */
export interface WaitDependencies<G> {
  /** Asks for the lock once, joining (or staying in) the queue when it is not granted. */
  attempt(): Promise<AttemptOutcome<G>>;
  /** Leaves the queue, and gives back a grant this request got but never heard of (its answer was lost). */
  cancel(): Promise<void>;
  registry: WakeRegistry;
  pollIntervalMs: number;
  /** Aborts when the manager stops. */
  stopping: AbortSignal;
  instanceId: string;
  events: TypedEmitter<LockEventMap>;
}

/**
 * Waits for a grant, first come first served: one attempt joins the queue; after that
 * the waiter looks again only when woken for it (a release names the next waiter),
 * when the lease in its way expires, or at its jittered fallback poll (NOTIFY is a
 * hint; the poll is the truth and keeps its place in the queue alive). An outage
 * repeats the same request (same request id: a grant whose answer was lost is found,
 * not counted twice). A timeout or abort leaves the queue and gives back a grant that
 * may have been made, so nothing is left behind.
 */
export async function waitForGrant<G>(
  a: ResolvedAcquire,
  d: WaitDependencies<G>,
): Promise<{ grant: G; sentAt: number; waitedMs: number }> {
  const started = performance.now();
  const deadline = a.timeoutMs === undefined ? Number.POSITIVE_INFINITY : started + a.timeoutMs;
  const wakeable = new Wakeable();
  let woken: WakeCause | undefined;
  let waiterId: string | undefined;
  const onAbort = () => wakeable.wake();
  a.signal?.addEventListener('abort', onAbort);
  d.stopping.addEventListener('abort', onAbort);
  const giveUpIfDue = () => {
    if (a.signal?.aborted) throw new LockAbortedError(a.name, 'its signal aborted', a.signal.reason);
    if (d.stopping.aborted) throw new LockAbortedError(a.name, 'the lock manager stopped');
    if (performance.now() >= deadline) throw new LockTimeoutError(a.name, a.timeoutMs ?? 0);
  };
  try {
    giveUpIfDue(); // a signal aborted before the call: never join the queue
    for (let failures = 0; ; ) {
      const sentAt = performance.now();
      let outcome: AttemptOutcome<G>;
      try {
        outcome = await d.attempt();
        failures = 0;
      } catch (error) {
        if (!isDatabaseOutage(error)) throw error;
        failures += 1;
        d.events.emit('lock:error', {
          instanceId: d.instanceId,
          name: a.name,
          during: 'acquire',
          error: asError(error),
        });
        giveUpIfDue();
        await wakeable.wait(Math.min(backoffDelay(failures, OUTAGE_BACKOFF), deadline - performance.now()));
        giveUpIfDue();
        if (waiterId !== undefined)
          d.events.emit('lock:wakeup', { instanceId: d.instanceId, name: a.name, waiterId, cause: 'outage' });
        continue;
      }
      if (outcome.grant !== undefined) {
        if (a.signal?.aborted || d.stopping.aborted) giveUpIfDue(); // granted too late: the catch gives it back
        return { grant: outcome.grant, sentAt, waitedMs: Math.round(performance.now() - started) };
      }
      // A new place: the first one, or again at the back after this waiter's place
      // expired unrenewed (an outage, a pause longer than three polls).
      if (outcome.waiterId !== undefined && outcome.waiterId !== waiterId) {
        if (waiterId !== undefined) d.registry.delete(waiterId);
        waiterId = outcome.waiterId;
        d.registry.add(waiterId, (cause) => {
          woken ??= cause;
          wakeable.wake();
        });
        d.events.emit('lock:waiting', {
          instanceId: d.instanceId,
          name: a.name,
          owner: a.owner,
          mode: a.mode,
          waiterId,
        });
      }
      giveUpIfDue();
      const poll = d.pollIntervalMs * (0.75 + Math.random() * 0.5);
      const expiry = outcome.retryInMs === undefined ? Number.POSITIVE_INFINITY : outcome.retryInMs + 2;
      await wakeable.wait(Math.max(0, Math.min(poll, expiry, deadline - performance.now())));
      giveUpIfDue();
      const cause = woken ?? (expiry <= poll ? 'expiry' : 'poll');
      woken = undefined;
      if (waiterId !== undefined)
        d.events.emit('lock:wakeup', { instanceId: d.instanceId, name: a.name, waiterId, cause });
    }
  } catch (error) {
    await cancelQuietly(a, d);
    throw error;
  } finally {
    a.signal?.removeEventListener('abort', onAbort);
    d.stopping.removeEventListener('abort', onAbort);
    if (waiterId !== undefined) d.registry.delete(waiterId);
  }
}

/**
 * Leaves the queue, a few times across an outage; if it never gets through, the
 * waiter's row expires on its own (its poll no longer renews it), and so does a grant.
 */
async function cancelQuietly<G>(a: ResolvedAcquire, d: WaitDependencies<G>): Promise<void> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      await d.cancel();
      return;
    } catch (error) {
      d.events.emit('lock:error', { instanceId: d.instanceId, name: a.name, during: 'cancel', error: asError(error) });
      if (!isDatabaseOutage(error)) return;
      await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, OUTAGE_BACKOFF)));
    }
  }
}
