/**
 * What an orchestrator tells its listeners, always after the transaction committed.
 * Every payload names the orchestrator instance that emitted it (`instanceId`).
 */
export interface SagaEventMap {
  /** `start` inserted a new saga (not for an id that already existed). */
  'saga:started': { instanceId: string; sagaId: string; type: string };
  /** Every step succeeded: the saga is `completed`. */
  'saga:completed': { instanceId: string; sagaId: string; type: string };
  /**
   * A step failed (a failure reply it does not retry, a local step that threw, a reply
   * deadline it does not retry) and compensation begins; `fromStep` names the failed
   * step, `reason` says why. Followed at once by `saga:compensated` if no step to undo
   * has a compensation.
   */
  'saga:compensating': { instanceId: string; sagaId: string; type: string; fromStep: string; reason: string };
  /** Every compensation succeeded: the saga is `compensated`. */
  'saga:compensated': { instanceId: string; sagaId: string; type: string };
  /** A compensation kept failing: the saga needs attention; `resume(sagaId)` after a fix. */
  'saga:failed': { instanceId: string; sagaId: string; type: string; step: string; error: string };
  /** A reply that does not match what the saga waits for (duplicate, late or reordered). */
  'saga:replyIgnored': { instanceId: string; sagaId: string; step: number; phase: string; reason: string };
}

/**
 * One event to emit once the transaction that produced it has committed; the
 * orchestrator adds its `instanceId` when it emits it.
 */
export type SagaNotice = {
  [E in keyof SagaEventMap]: { event: E; payload: Omit<SagaEventMap[E], 'instanceId'> };
}[keyof SagaEventMap];
