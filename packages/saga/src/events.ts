/** What an orchestrator tells its listeners, always after the transaction committed. */
export interface SagaEventMap {
  'saga:started': { sagaId: string; type: string };
  'saga:completed': { sagaId: string; type: string };
  'saga:compensating': { sagaId: string; type: string; fromStep: string; reason: string };
  'saga:compensated': { sagaId: string; type: string };
  /** A compensation kept failing: the saga needs attention; `resume(sagaId)` after a fix. */
  'saga:failed': { sagaId: string; type: string; step: string; error: string };
  /** A reply that does not match what the saga waits for (duplicate, late or reordered). */
  'saga:replyIgnored': { sagaId: string; step: number; phase: string; reason: string };
}

/** One event to emit once the transaction that produced it has committed. */
export type SagaNotice = { [E in keyof SagaEventMap]: { event: E; payload: SagaEventMap[E] } }[keyof SagaEventMap];
