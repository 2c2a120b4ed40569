/** What an orchestrator tells its listeners, always after the transaction committed. */
export interface SagaEventMap {
  /** `start` inserted a new saga (not for an id that already existed). */
  'saga:started': { sagaId: string; type: string };
  /** Every step succeeded: the saga is `completed`. */
  'saga:completed': { sagaId: string; type: string };
  /**
   * A step failed (a failure reply it does not retry, a local step that threw, a reply
   * deadline it does not retry) and compensation begins; `fromStep` names the failed
   * step, `reason` says why. Followed at once by `saga:compensated` if no step to undo
   * has a compensation.
   */
  'saga:compensating': { sagaId: string; type: string; fromStep: string; reason: string };
  /** Every compensation succeeded: the saga is `compensated`. */
  'saga:compensated': { sagaId: string; type: string };
  /** A compensation kept failing: the saga needs attention; `resume(sagaId)` after a fix. */
  'saga:failed': { sagaId: string; type: string; step: string; error: string };
  /** A reply that does not match what the saga waits for (duplicate, late or reordered). */
  'saga:replyIgnored': { sagaId: string; step: number; phase: string; reason: string };
}

/** One event to emit once the transaction that produced it has committed. */
export type SagaNotice = { [E in keyof SagaEventMap]: { event: E; payload: SagaEventMap[E] } }[keyof SagaEventMap];
