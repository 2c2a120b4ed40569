export {
  type AnySagaDefinition,
  type CommandSpec,
  type DeadlinePolicy,
  defineSaga,
  type LocalAction,
  type LocalStepContext,
  type ReplyFold,
  type ReplyHandler,
  type RetryPolicy,
  SagaBuilder,
  type SagaData,
  type SagaDefinition,
  StepBuilder,
  type StepDefinition,
} from './definition.js';
export {
  CommandRejected,
  InvalidReplyError,
  InvalidSagaDataError,
  MalformedSagaMessageError,
  SagaConcurrencyError,
  SagaStateError,
} from './errors.js';
export type { SagaEventMap } from './events.js';
export { observeSagaGauges } from './gauges.js';
export { participantMigrations, sagaMigrations } from './migrations.js';
export type { OrchestratorOptions } from './options.js';
export { createSagaOrchestrator, type SagaInstance, type SagaOrchestrator } from './orchestrator.js';
export {
  type CommandContext,
  type CommandHandler,
  type CommandHandlerOptions,
  createParticipant,
  type Participant,
  type ParticipantOptions,
} from './participant.js';
export {
  parseSagaCommand,
  parseSagaReply,
  type ReplyOutcome,
  SAGA_HEADER,
  SAGA_REPLY_TYPE,
  type SagaAddress,
  type SagaCommand,
  type SagaMessageHandler,
  type SagaPhase,
  type SagaReply,
  sagaReply,
} from './protocol.js';
export type { SagaHistoryEntry, SagaStatus } from './state.js';
