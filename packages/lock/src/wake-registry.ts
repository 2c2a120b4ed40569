/** Why a waiter is woken: a wake-up meant for it, or "look again, something may have been missed". */
export type WakeCause = 'notify' | 'poll';

/** How long a wake-up for a waiter not registered yet is remembered, in ms. */
const EARLY_WAKE_MS = 30_000;
/** At most this many early wake-ups are remembered (they are hints; the poll is the truth). */
const EARLY_WAKE_LIMIT = 1_000;

/**
 * Routes targeted wake-ups (a NOTIFY naming a waiter) to the waiting `acquire` they
 * are meant for, in one manager. A wake-up can arrive before the acquire has read its
 * waiter id from the statement that queued it (the holder released in between), so
 * one for an unknown id is remembered for a while and delivered on registration.
 */
export class WakeRegistry {
  readonly #waiters = new Map<string, (cause: WakeCause) => void>();
  readonly #early = new Map<string, number>();

  /** Registers the waiter `id`; a wake-up that came early is delivered at once. */
  add(id: string, wake: (cause: WakeCause) => void): void {
    this.#waiters.set(id, wake);
    if (this.#early.delete(id)) wake('notify');
  }

  /** Forgets the waiter `id`. */
  delete(id: string): void {
    this.#waiters.delete(id);
  }

  /** Wakes the waiter `id`, or remembers the wake-up if it is not registered yet. */
  wake(id: string): void {
    const waiter = this.#waiters.get(id);
    if (waiter) {
      waiter('notify');
      return;
    }
    const now = performance.now();
    for (const [early, at] of this.#early) {
      if (now - at > EARLY_WAKE_MS || this.#early.size >= EARLY_WAKE_LIMIT) this.#early.delete(early);
      else break; // insertion order is arrival order: the rest are younger
    }
    this.#early.set(id, now);
  }

  /** Wakes every waiter (the LISTEN connection was lost: notifications may have been missed). */
  wakeAll(): void {
    for (const wake of this.#waiters.values()) wake('poll');
  }
}
