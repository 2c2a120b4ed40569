import { EventualError } from './errors.js';

/**
 * Every long-running part of eventual (relay, scheduler, consumer, service) has this
 * shape and this state table:
 *
 *   idle --start()--> starting --(started)--> running --stop()--> stopping --> stopped
 *                        |  start failed: cleaned up, then stopped    ^
 *                        +--stop(): start is aborted, then stopped -------+
 *
 * `stop()` on an idle part just marks it stopped; a second `stop()` returns the first
 * one's promise. A stopped part cannot start again: create a new one.
 */
export type LifecycleState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/** A long-running part that follows the state table on `LifecycleState`; `lifecycle()` builds one. */
export interface Lifecycle {
  /** Where the part is in the state table. */
  readonly state: LifecycleState;
  /**
   * Brings the part up; resolves once it is running. Rejects with `LifecycleError` unless
   * the part is idle. A start that fails is cleaned up (the part ends stopped) and
   * rejects with the start's own error.
   */
  start(): Promise<void>;
  /**
   * Brings the part down, aborting a start in progress; resolves once it is stopped.
   * Safe to call in any state: on an idle part it only marks it stopped, a second call
   * returns the first one's promise.
   */
  stop(): Promise<void>;
}

/** `start()` on a part that is not idle. */
export class LifecycleError extends EventualError {
  override name = 'LifecycleError';
  constructor(message: string) {
    super('lifecycle', message, { retriable: false });
  }
}

/** A part's own start and stop, which `lifecycle()` wraps in the state table. */
export interface LifecycleHooks {
  /** Brings the part up. `signal` aborts when `stop()` is called while it runs. */
  start(signal: AbortSignal): Promise<void>;
  /** Brings it down; also called to clean up after a failed start. */
  stop(): Promise<void>;
}

/** The state table above around a part's own start and stop. `name` appears in errors. */
export function lifecycle(name: string, hooks: LifecycleHooks): Lifecycle {
  let state: LifecycleState = 'idle';
  const aborting = new AbortController();
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  let bringingDown: Promise<void> | undefined;

  /** hooks.stop() exactly once, whoever asks first: stop(), or a start that failed. */
  const bringDown = () => {
    bringingDown ??= (async () => {
      try {
        await hooks.stop();
      } finally {
        state = 'stopped';
      }
    })();
    return bringingDown;
  };

  return {
    get state() {
      return state;
    },
    async start() {
      if (state !== 'idle')
        throw new LifecycleError(`${name} cannot start: it is ${state} (create a new one to start again)`);
      state = 'starting';
      starting = hooks.start(aborting.signal);
      try {
        await starting;
      } catch (error) {
        // Whatever did come up is taken down again; the caller sees the start's error.
        await bringDown().catch(() => {});
        throw error;
      }
      if (state === 'starting') state = 'running';
    },
    stop() {
      if (state === 'idle') state = 'stopped';
      if (stopping) return stopping;
      if (state === 'stopped') return Promise.resolve();
      const wasStarting = state === 'starting';
      state = 'stopping';
      stopping = (async () => {
        if (wasStarting) {
          aborting.abort();
          await starting?.catch(() => {});
        }
        await bringDown();
      })();
      return stopping;
    },
  };
}
