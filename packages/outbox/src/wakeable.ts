/**
 * An abortable delay for background loops: `wait(ms)` resolves after `ms` or as soon
 * as `wake()` is called. A wake-up that arrives while the loop is busy is remembered,
 * so a NOTIFY received mid-batch is not lost and the next wait returns at once.
 */
export class Wakeable {
  #pending = false;
  #resolve: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  wait(ms: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#resolve = resolve;
      this.#timer = setTimeout(() => this.#settle(), ms);
    });
  }

  wake(): void {
    if (this.#resolve) this.#settle();
    else this.#pending = true;
  }

  #settle(): void {
    clearTimeout(this.#timer);
    const resolve = this.#resolve;
    this.#resolve = undefined;
    this.#pending = false;
    resolve?.();
  }
}
