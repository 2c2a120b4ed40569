import { type Logger, safeLog, stderrLogger } from './logger.js';

/**
 * A tiny typed emitter, shared by every eventual package. `on()` returns an
 * unsubscribe function (as kafkajs does); a listener that throws or rejects is
 * reported through the logger once per listener and never interrupts the loop that
 * emitted (graphile-worker's `safeEmit`).
 */
export class TypedEmitter<M extends object> {
  readonly #listeners = new Map<keyof M, Set<(payload: never) => unknown>>();
  readonly #reported = new WeakSet<object>();
  readonly #logger: Logger;
  readonly #namespace: string;

  constructor(namespace = 'events', logger: Logger = stderrLogger) {
    this.#namespace = namespace;
    this.#logger = logger;
  }

  /**
   * Adds `listener` for `event` and returns the function that removes it. What the
   * listener throws or rejects with is logged once for that listener and ignored.
   */
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

  /**
   * Calls the listeners of `event` synchronously, in the order they were added, and
   * never throws; an async listener is not awaited.
   */
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
    safeLog(this.#logger, {
      level: 'error',
      namespace: this.#namespace,
      message: `a '${event}' listener threw (reported once, ignored)`,
      error: error instanceof Error ? error : new Error(String(error)),
      event,
    });
  }
}
