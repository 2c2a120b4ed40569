import type { JsonValue, MessageInput } from '@eventual/outbox';
import type { LocalAction, SagaData } from './definition.js';
import type { SagaNotice } from './events.js';
import type { ReplyOutcome, SagaPhase } from './protocol.js';

/**
 * Where a saga is: `running` its steps, `compensating` them in reverse, or finished:
 * `completed`, `compensated`, or `failed` (a compensation kept failing; `resume` retries it).
 */
export type SagaStatus = 'running' | 'compensating' | 'completed' | 'compensated' | 'failed';

/** One line of a saga's history (the last 200 are kept with the saga). */
export interface SagaHistoryEntry {
  /** When, as an ISO 8601 timestamp on the orchestrator's clock. */
  at: string;
  /** The step's name. */
  step: string;
  /** Whether it happened doing the step or undoing it. */
  phase: SagaPhase;
  /**
   * What happened: `ran` (a local action succeeded), `sent` (a command went out),
   * `succeeded` / `failed` (a reply, or `failed` for a local action that threw),
   * `timed-out` (no reply by the deadline), `resumed` (by `resume`). No transition
   * writes `skipped`.
   */
  event: 'ran' | 'sent' | 'succeeded' | 'failed' | 'timed-out' | 'skipped' | 'resumed';
  /** The step's attempt in that phase (1 for the first command or run; 0 for `resumed`). */
  attempt: number;
  /** Why, for `failed`: the reply's reason or the error, at most 500 characters. */
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
  /** The W3C trace headers (JSON) of the last traced transition, or null: where a sweep continues the trace. */
  traceContext: string | null;
  /** Optimistic concurrency: every update names the version it read and bumps it. */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

// The state machine's vocabulary (run.ts): what happens to a saga, and what a transition produces.

export interface MachineDeps {
  now(): Date;
  /** Delay before retry number `attempt` of a step or a compensation (jittered backoff). */
  retryDelayMs(attempt: number): number;
  /** Attempts at one compensation before the saga goes `failed`. */
  maxCompensationAttempts: number;
  /** Where participants send their replies (the `reply-to` header of every command). */
  replyTopic: string;
}

export type LocalOutcome = { ok: true; data?: SagaData } | { ok: false; error: string };

export type SagaEvent =
  /** A saga just inserted (running, step 0): run forward until a command is in flight or it completed. */
  | { kind: 'start' }
  | { kind: 'reply'; step: number; phase: SagaPhase; outcome: ReplyOutcome; retriable: boolean; payload: JsonValue }
  /** The wake-up time passed: a reply deadline (timeout) or a scheduled retry. */
  | { kind: 'wake' }
  /** An operator resumes a `failed` saga: retry the compensation that failed. */
  | { kind: 'resume' }
  /** The local action the machine paused on ran (its savepoint committed) or threw (rolled back). */
  | { kind: 'local'; outcome: LocalOutcome };

export interface Transition {
  state: SagaState;
  commands: MessageInput<JsonValue>[];
  notices: SagaNotice[];
  /** The history entries this transition appended, in order: the step transitions traced as spans. */
  logged: SagaHistoryEntry[];
  /** Set when the machine paused on a local action: run it, then advance with `{ kind: 'local' }`. */
  runLocal?: { action: LocalAction<SagaData>; phase: SagaPhase; step: number };
  /** False when nothing changed (an ignored reply, nothing to wake): there is nothing to save. */
  changed: boolean;
}
