export { type BackoffPolicy, backoffDelay } from './backoff.js';
export { runCheckBack } from './checkback.js';
export {
  EventualError,
  IllegalTransitionError,
  InvalidMessageError,
  InvalidOptionError,
  MessageTooLargeError,
  PreparedMessageResolvedError,
  PublishError,
  type PublishErrorKind,
  SchemaNotReadyError,
  TransactionRequiredError,
  UnknownMessageError,
} from './errors.js';
export { type OutboxCounters, type OutboxEventMap, type OutboxEventName, TypedEmitter } from './events.js';
export { classifyKafkaError, createKafkaPublisher, type KafkaPublisherOptions } from './kafka-publisher.js';
export { HEADER, type JsonValue, type Message, type MessageInput } from './message.js';
export { migrateOutbox, type OutboxSchemaOptions, outboxMigrations } from './migrations.js';
export type { BackoffOptions, CheckBackOptions, OutboxOptions, ResolvedOutboxOptions } from './options.js';
export {
  type BoundOutbox,
  type CheckAnswer,
  type Checker,
  type CheckerSelector,
  createOutbox,
  type DeadMessage,
  type Outbox,
  type OutboxStats,
} from './outbox.js';
export type { OutboundRecord, Publisher } from './publisher.js';
export { createRelay, type Relay, type RelayOptions, type RelayState } from './relay.js';
export { createRunCoordinator, type PostgresRunCoordinator } from './run-coordinator.js';
export { createScheduler, type JobName, type Scheduler, type SchedulerOptions } from './scheduler.js';
export { Wakeable } from './wakeable.js';
