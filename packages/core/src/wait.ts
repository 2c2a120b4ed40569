/**
 * The one abortable wait of every background loop: resolves `true` after `ms`, or
 * `false` as soon as `signal` aborts (a stop, a rebalance).
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (completed: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(completed);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `sleep` that another party can cut short: `wait(ms)` resolves after `ms` or as soon
 * as `wake()` is called. A wake-up that arrives while the loop is busy is remembered,
 * so a NOTIFY received mid-batch is not lost and the next wait returns at once.
 */
export class Wakeable {
  #pending = false;
  #waiting: AbortController | undefined;

  /** Resolves after `ms`, as soon as `wake()` is called, or at once if a wake-up is remembered. */
  async wait(ms: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return;
    }
    const waiting = new AbortController();
    this.#waiting = waiting;
    await sleep(ms, waiting.signal);
    if (this.#waiting === waiting) this.#waiting = undefined;
    this.#pending = false;
  }

  /**
   * Ends the wait in progress; with none in progress, the next `wait()` returns at once
   * (a wake-up is remembered, not counted).
   */
  wake(): void {
    if (this.#waiting) {
      this.#waiting.abort();
      this.#waiting = undefined;
    } else this.#pending = true;
  }
}
