export {
  type AnySagaDefinition,
  type CommandSpec,
  type DeadlinePolicy,
  defineSaga,
  type LocalAction,
  type LocalStepContext,
  type ReplyHandler,
  type RetryPolicy,
  SagaBuilder,
  type SagaData,
  type SagaDefinition,
  StepBuilder,
  type StepDefinition,
} from './definition.js';
export { CommandRejected, SagaConcurrencyError, SagaStateError } from './errors.js';
export { participantMigrations, sagaMigrations } from './migrations.js';
export {
  createSagaOrchestrator,
  type OrchestratorOptions,
  type SagaEventMap,
  type SagaInstance,
  type SagaOrchestrator,
} from './orchestrator.js';
export {
  type CommandContext,
  type CommandHandler,
  createParticipant,
  type Participant,
  type ParticipantOptions,
  sagaReply,
} from './participant.js';
export { type ReplyOutcome, SAGA_HEADER, SAGA_REPLY_TYPE, type SagaPhase } from './protocol.js';
export type { SagaHistoryEntry, SagaStatus } from './state.js';
