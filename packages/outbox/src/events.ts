import type { Message } from './message.js';

/** Every event eventual's outbox emits, by name. Listeners can never break the library. */
export interface OutboxEventMap {
  'relay:published': { messages: Message[]; durationMs: number };
  /** A publication failed; the messages will be retried after `retryInMs` unless they went dead. */
  'relay:failed': {
    messageIds: string[];
    error: Error;
    kind: 'unavailable' | 'retriable' | 'permanent';
    retryInMs: number;
  };
  'relay:dead': { messageId: string; topic: string; error: string; attempts: number };
  /** The relay lost a shard lease between publishing and marking; another instance republishes. */
  'relay:fenced': { shard: number; messageIds: string[] };
  'relay:leases': { owned: number[] };
  'relay:error': { error: Error };
  'checkback:checked': { messageId: string; answer: 'commit' | 'rollback' | 'unknown'; checks: number };
  'checkback:resolved': { messageId: string; resolution: 'commit' | 'rollback'; by: 'checkback' | 'default' };
  'checkback:exhausted': { messageId: string; checks: number; resolution: 'commit' | 'rollback' };
  'cleanup:deleted': { deleted: number };
  'sweep:dead': { dead: number; oldestDeadId: string | null };
  /** A scheduled job ran on this instance (it won the slot for the whole cluster). */
  'scheduler:ran': { job: string; instanceId: string; slot: Date; result: number; durationMs: number };
  'scheduler:error': { job: string; error: Error };
}

export type OutboxEventName = keyof OutboxEventMap;

/**
 * A tiny typed emitter, shared by every eventual package. `on()` returns an
 * unsubscribe function (as kafkajs does); a listener that throws or rejects is
 * reported on stderr once per listener and never interrupts the loop that emitted.
 */
export class TypedEmitter<M extends object> {
  readonly #listeners = new Map<keyof M, Set<(payload: never) => unknown>>();
  readonly #reported = new WeakSet<object>();

  on<E extends keyof M>(event: E, listener: (payload: M[E]) => void): () => void {
    const set = this.#listeners.get(event) ?? new Set();
    set.add(listener as (payload: never) => unknown);
    this.#listeners.set(event, set);
    return () => void set.delete(listener as (payload: never) => unknown);
  }

  /** Whether anyone listens: lets an emitter skip building a payload nobody reads. */
  listens(event: keyof M): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0;
  }

  emit<E extends keyof M>(event: E, payload: M[E]): void {
    for (const listener of this.#listeners.get(event) ?? []) {
      try {
        const result = (listener as (payload: M[E]) => unknown)(payload);
        if (result instanceof Promise) result.catch((error: unknown) => this.#report(String(event), listener, error));
      } catch (error) {
        this.#report(String(event), listener, error);
      }
    }
  }

  #report(event: string, listener: object, error: unknown): void {
    if (this.#reported.has(listener)) return;
    this.#reported.add(listener);
    process.stderr.write(
      `[eventual] a '${event}' listener threw (reported once, ignored): ${error instanceof Error ? error.stack : String(error)}\n`,
    );
  }
}

export class Events extends TypedEmitter<OutboxEventMap> {}

/** Running totals a metrics exporter can read at any time. */
export interface OutboxCounters {
  published: number;
  failed: number;
  dead: number;
  checked: number;
  fenced: number;
  cleaned: number;
}
