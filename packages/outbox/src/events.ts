import type { Message } from './message.js';

/** Events of an outbox's own mechanisms (check-back, cleanup, dead sweep), by name. */
export interface OutboxEventMap {
  'checkback:checked': {
    instanceId: string;
    messageId: string;
    answer: 'commit' | 'rollback' | 'unknown';
    checks: number;
  };
  'checkback:resolved': {
    instanceId: string;
    messageId: string;
    resolution: 'commit' | 'rollback';
    by: 'checkback' | 'default';
  };
  'checkback:exhausted': { instanceId: string; messageId: string; checks: number; resolution: 'commit' | 'rollback' };
  /** A checker threw (or answered something else than commit/rollback/unknown): counted as `unknown`. */
  'checkback:error': { instanceId: string; messageId: string; error: Error };
  'cleanup:deleted': { instanceId: string; deleted: number };
  'sweep:dead': { instanceId: string; dead: number; oldestDeadId: string | null };
}

export type OutboxEventName = keyof OutboxEventMap;

/** Every event a relay emits, by name, each with the relay's `instanceId`. */
export interface RelayEventMap {
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
  'relay:dead': { instanceId: string; messageId: string; topic: string; error: string; attempts: number };
  /** The relay lost a shard lease between publishing and marking; another instance republishes. */
  'relay:fenced': { instanceId: string; shard: number; messageIds: string[] };
  'relay:leases': { instanceId: string; owned: number[] };
  /**
   * The database was unreachable or a statement failed; the relay backs off and tries
   * again. One event per outage (its first failure), not one per retry.
   */
  'relay:error': { instanceId: string; error: Error };
}

export type RelayEventName = keyof RelayEventMap;

/** Running totals of an outbox's mechanisms a metrics exporter can read at any time. */
export interface OutboxCounters {
  checked: number;
  cleaned: number;
}

/** Running totals of one relay. */
export interface RelayCounters {
  published: number;
  failed: number;
  dead: number;
  fenced: number;
}
