import type { Message } from './message.js';

/** Events of an outbox's own mechanisms (check-back, cleanup, dead sweep), by name. */
export interface OutboxEventMap {
  /**
   * A prepared message was checked. `answer` is `unknown` too when no checker matched,
   * it threw or it answered something else; `checks` counts this one.
   */
  'checkback:checked': {
    instanceId: string;
    messageId: string;
    answer: 'commit' | 'rollback' | 'unknown';
    checks: number;
  };
  /**
   * The check-back resolved a prepared message (the producer did not first): by the
   * checker's answer (`by: 'checkback'`) or by `defaultResolution` after `maxChecks`.
   */
  'checkback:resolved': {
    instanceId: string;
    messageId: string;
    resolution: 'commit' | 'rollback';
    by: 'checkback' | 'default';
  };
  /**
   * `maxChecks` checks all answered `unknown`, and `defaultResolution` was applied as
   * `resolution`; a `checkback:resolved` with `by: 'default'` follows.
   */
  'checkback:exhausted': { instanceId: string; messageId: string; checks: number; resolution: 'commit' | 'rollback' };
  /** A checker threw (or answered something else than commit/rollback/unknown): counted as `unknown`. */
  'checkback:error': { instanceId: string; messageId: string; error: Error };
  /** A cleanup run deleted `deleted` published rows older than `retentionMs`; not emitted when it deleted none. */
  'cleanup:deleted': { instanceId: string; deleted: number };
  /**
   * The sweep found `dead` dead messages (it is not emitted when there are none);
   * `oldestDeadId` is the first in id order, the one `listDead()` returns first.
   */
  'sweep:dead': { instanceId: string; dead: number; oldestDeadId: string | null };
}

/** The name of an outbox event, for `outbox.on(name, listener)`. */
export type OutboxEventName = keyof OutboxEventMap;

/** Every event a relay emits, by name, each with the relay's `instanceId`. */
export interface RelayEventMap {
  /**
   * A batch was published and marked; `messages` are those marked (not the fenced
   * ones), `durationMs` from the publish call to the end of the mark.
   */
  'relay:published': { instanceId: string; messages: Message[]; durationMs: number };
  /**
   * A publication failed; the messages will be retried after `retryInMs` unless they
   * went dead. Not emitted while the broker is unreachable: that is one
   * `relay:brokerUnavailable` per outage.
   */
  'relay:failed': {
    instanceId: string;
    messageIds: string[];
    error: Error;
    kind: 'retriable' | 'permanent';
    retryInMs: number;
  };
  /**
   * The broker became unreachable (the first publish of an outage failed as
   * `unavailable`). Once per outage, whatever the retries and lanes: the relay keeps
   * backing off without spending any message's attempts.
   */
  'relay:brokerUnavailable': { instanceId: string; error: Error };
  /** The first publish after a `relay:brokerUnavailable` succeeded; `downtimeMs` since it. */
  'relay:brokerAvailable': { instanceId: string; downtimeMs: number };
  /**
   * A message went `dead` (`maxAttempts` spent or a permanent error): no more attempts
   * until `outbox.requeue()`. `error` is the last publish error's message.
   */
  'relay:dead': { instanceId: string; messageId: string; topic: string; error: string; attempts: number };
  /** The relay lost a shard lease between publishing and marking; another instance republishes. */
  'relay:fenced': { instanceId: string; shard: number; messageIds: string[] };
  /** The shards this relay holds may have changed (taken, lost, given back); `owned` is the set it holds now. */
  'relay:leases': { instanceId: string; owned: number[] };
  /**
   * The database was unreachable or a statement failed; the relay backs off and tries
   * again. One event per outage (its first failure), not one per retry.
   */
  'relay:error': { instanceId: string; error: Error };
}

/** The name of a relay event, for `relay.on(name, listener)`. */
export type RelayEventName = keyof RelayEventMap;

/**
 * Running totals of an outbox's mechanisms a metrics exporter can read at any time,
 * counted by the jobs that ran in this process since it created the outbox.
 */
export interface OutboxCounters {
  /** Checks of prepared messages made by the check-back (one per checker call or missing checker). */
  checked: number;
  /** Published rows deleted by the cleanup job (not those deleted at once by `onPublished: 'delete'`). */
  cleaned: number;
}

/** Running totals of one relay since it was created. */
export interface RelayCounters {
  /** Messages published and marked (`published` or deleted). */
  published: number;
  /**
   * Records in publishes that failed, once per failed publish: a message retried three
   * times counts three, and so does every retry while the broker is unreachable.
   */
  failed: number;
  /** Messages this relay marked `dead`. */
  dead: number;
  /**
   * Messages published but not marked because the shard's lease was lost meanwhile:
   * the relay that holds it now publishes them again.
   */
  fenced: number;
}
