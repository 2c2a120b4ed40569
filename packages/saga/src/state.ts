import type { SagaPhase } from './protocol.js';

export type SagaStatus = 'running' | 'compensating' | 'completed' | 'compensated' | 'failed';

/** One line of a saga's history (the last 200 are kept with the saga). */
export interface SagaHistoryEntry {
  at: string;
  step: string;
  phase: SagaPhase;
  event: 'ran' | 'sent' | 'succeeded' | 'failed' | 'timed-out' | 'skipped' | 'resumed';
  attempt: number;
  detail?: string;
}

/** What the state machine reads and writes: a saga instance without its bookkeeping columns. */
export interface SagaState {
  id: string;
  /** The saga definition's name. */
  type: string;
  status: SagaStatus;
  /** Index of the step being executed (running) or compensated (compensating). */
  step: number;
  /** Commands sent / actions run for that step in the current phase. */
  attempt: number;
  data: object;
  /** What the saga waits for: a reply (until `wakeAt`, its deadline, if any) or a retry (at `wakeAt`). */
  waiting: 'reply' | 'retry' | null;
  wakeAt: Date | null;
  lastError: string | null;
  history: SagaHistoryEntry[];
}

/** A row of the saga store. */
export interface SagaRow extends SagaState {
  /** Optimistic concurrency: every update names the version it read and bumps it. */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}
