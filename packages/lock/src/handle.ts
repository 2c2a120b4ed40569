import {
  asError,
  backoffDelay,
  isDatabaseOutage,
  type Logger,
  OUTAGE_BACKOFF,
  safeLog,
  sleep,
  type TypedEmitter,
} from '@eventual/core';
import { LockLostError, LockNotHeldError } from './errors.js';
import type { LockEventMap, LockHandle, LockMode } from './types.js';

/** What a backend granted, as the handle keeps it. */
export interface Grant {
  name: string;
  owner: string;
  mode: LockMode;
  token: bigint;
  holds: number;
  ttlMs: number;
  /**
   * `performance.now()` when the granting request was sent. The server started the TTL
   * later than that, on its own clock, so `sentAt + ttlMs` is a deadline this process
   * reaches no later than the server does: the handle gives the lock up first.
   */
  sentAt: number;
}

/** The backend's side of one grant: the two statements a handle needs. */
export interface LeasePort {
  /** Extends the lease by its TTL; false when it is no longer this grant's (expired, or taken). Rejects on an outage. */
  renew(): Promise<boolean>;
  /** Gives this hold back: the holds the owner has left, or `undefined` when the grant was no longer held. */
  release(): Promise<number | undefined>;
}

/** Where a handle reports, and whom it tells that it ended. */
export interface HandleContext {
  instanceId: string;
  events: TypedEmitter<LockEventMap>;
  logger: Logger;
  /** Called once, when the handle is released or lost. */
  ended(handle: LeaseHandle): void;
}

type HandleState = 'held' | 'released' | 'lost';

/**
 * A granted lease, backend-neutral: renews it every `ttlMs / 3` in the background,
 * aborts `signal` when it is lost (a renewal answered "not yours", or the deadline
 * passed without a successful renewal, e.g. while the database was unreachable or the
 * process was paused), and releases it once. Nothing here ever rejects unobserved:
 * renewal failures become `lock:error` events and, past the deadline, the signal.
 */
export class LeaseHandle implements LockHandle {
  readonly name: string;
  readonly owner: string;
  readonly mode: LockMode;
  readonly token: bigint;
  readonly holds: number;
  readonly #ttlMs: number;
  readonly #port: LeasePort;
  readonly #context: HandleContext;
  readonly #lost = new AbortController();
  readonly #stopRenewing = new AbortController();
  #state: HandleState = 'held';
  #validUntil: number;
  #deadline: ReturnType<typeof setTimeout> | undefined;

  constructor(grant: Grant, port: LeasePort, context: HandleContext) {
    this.name = grant.name;
    this.owner = grant.owner;
    this.mode = grant.mode;
    this.token = grant.token;
    this.holds = grant.holds;
    this.#ttlMs = grant.ttlMs;
    this.#port = port;
    this.#context = context;
    this.#validUntil = grant.sentAt + grant.ttlMs;
    this.#armDeadline();
    void this.#renewLoop().catch((error: unknown) => this.#report('renew', asError(error)));
  }

  get signal(): AbortSignal {
    return this.#lost.signal;
  }

  get held(): boolean {
    return this.#state === 'held';
  }

  /** The error `guard` and `release` raise once lost, or undefined while held. */
  protected lostReason(): LockLostError | undefined {
    return this.#lost.signal.aborted ? (this.#lost.signal.reason as LockLostError) : undefined;
  }

  /** Throws what using a handle that no longer holds the lock should throw (for a backend's `guard`). */
  assertHeld(): void {
    if (this.#state === 'released') throw new LockNotHeldError(this.name, 'released');
    const lost = this.lostReason();
    if (lost) throw lost;
  }

  /** Marks the lease lost (a backend's `guard` found the token no longer current). */
  markLost(detail: string): LockLostError {
    this.#lose(detail);
    return this.lostReason() ?? new LockLostError(this.name, this.token, detail);
  }

  /** A backend's last word before a release: throws to refuse it (nothing changes then). */
  protected checkRelease(): void {}

  /**
   * Stops renewing without a release (the manager stops and the release was refused or
   * failed): the lease expires on the server within its TTL.
   */
  abandon(): void {
    if (this.#state !== 'held') return;
    this.#state = 'released';
    this.#stopTimers();
    this.#context.ended(this);
  }

  async release(): Promise<void> {
    if (this.#state === 'released') throw new LockNotHeldError(this.name, 'released');
    if (this.#state === 'lost') throw new LockNotHeldError(this.name, 'lost');
    this.checkRelease();
    this.#state = 'released';
    this.#stopTimers();
    this.#context.ended(this);
    for (let failures = 0; ; ) {
      try {
        const left = await this.#port.release();
        if (left === undefined) {
          this.#abort('it was no longer held when released (expired, or taken by a newer holder)');
          throw new LockNotHeldError(this.name, 'lost');
        }
        const { instanceId, events } = this.#context;
        events.emit('lock:released', {
          instanceId,
          name: this.name,
          owner: this.owner,
          token: this.token,
          holds: left,
        });
        return;
      } catch (error) {
        if (!isDatabaseOutage(error)) throw error;
        failures += 1;
        this.#report('release', asError(error));
        // Past the deadline the lease has expired on the server by itself: released.
        const left = this.#validUntil - performance.now();
        if (left <= 0) return;
        await sleep(Math.min(left, backoffDelay(failures, OUTAGE_BACKOFF)));
      }
    }
  }

  async #renewLoop(): Promise<void> {
    const interval = Math.max(1, Math.floor(this.#ttlMs / 3));
    const stop = this.#stopRenewing.signal;
    for (let failures = 0; this.#state === 'held'; ) {
      const delay = failures === 0 ? interval : Math.min(interval, backoffDelay(failures, OUTAGE_BACKOFF));
      if (!(await sleep(delay, stop))) return;
      const sentAt = performance.now();
      try {
        const kept = await this.#port.renew();
        if (this.#state !== 'held') return;
        if (!kept) {
          this.#lose('the renewal found it expired or taken by a newer holder');
          return;
        }
        failures = 0;
        this.#validUntil = sentAt + this.#ttlMs;
        this.#armDeadline();
      } catch (error) {
        failures += 1;
        this.#report('renew', asError(error));
      }
    }
  }

  #armDeadline(): void {
    clearTimeout(this.#deadline);
    const left = Math.max(0, this.#validUntil - performance.now());
    this.#deadline = setTimeout(() => this.#lose(`not renewed within its ttl of ${this.#ttlMs} ms`), left);
  }

  #stopTimers(): void {
    clearTimeout(this.#deadline);
    this.#stopRenewing.abort();
  }

  #lose(detail: string): void {
    if (this.#state !== 'held') return;
    this.#state = 'lost';
    this.#stopTimers();
    this.#context.ended(this);
    this.#abort(detail);
  }

  #abort(detail: string): void {
    if (this.#lost.signal.aborted) return;
    const error = new LockLostError(this.name, this.token, detail);
    this.#lost.abort(error);
    const { instanceId, events, logger } = this.#context;
    events.emit('lock:lost', { instanceId, name: this.name, owner: this.owner, token: this.token, error });
    safeLog(logger, { level: 'warn', namespace: 'lock', message: error.message, error, instanceId, lock: this.name });
  }

  #report(during: 'renew' | 'release', error: Error): void {
    const { instanceId, events } = this.#context;
    events.emit('lock:error', { instanceId, name: this.name, during, error });
  }
}
