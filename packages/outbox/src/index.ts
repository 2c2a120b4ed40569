export {
  type BackoffOptions,
  type BrokerFailure,
  BrokerUnreachableError,
  type EnsuredTopic,
  type EventualErrorCode,
  type EventualErrorCodes,
  TopicMismatchError,
  TopicNotFoundError,
  type TopicSpec,
} from '@eventual/core';
export { type CheckAnswer, type Checker, type OutboxDatabase, outboxDatabase } from './context.js';
export {
  EventualError,
  ForeignTransactionError,
  IllegalTransitionError,
  InvalidMessageError,
  InvalidOptionError,
  MessageTooLargeError,
  PreparedMessageResolvedError,
  PublishError,
  type PublishErrorKind,
  ReservedHeaderError,
  SchemaNotReadyError,
  TransactionRequiredError,
  UnknownMessageError,
} from './errors.js';
export type {
  OutboxCounters,
  OutboxEventMap,
  OutboxEventName,
  RelayCounters,
  RelayEventMap,
  RelayEventName,
} from './events.js';
export {
  DEFAULT_GAUGE_INTERVAL_MS,
  type GaugeOptions,
  gaugeInterval,
  observeOutboxGauges,
  observeRelayGauges,
  observeSchedulerGauges,
} from './gauges.js';
export { classifyKafkaConnectError, type KafkaConnectFailure, withKafkaAdmin } from './kafka-connect.js';
export { classifyKafkaError, createKafkaPublisher, type KafkaPublisherOptions } from './kafka-publisher.js';
export { type EnsureKafkaTopicsOptions, ensureKafkaTopics, missingKafkaTopics } from './kafka-topics.js';
export { HEADER, type JsonValue, type Message, type MessageInput, RESERVED_HEADERS } from './message.js';
export { migrateOutbox, type OutboxSchemaOptions, outboxMigrations } from './migrations.js';
export type { CheckBackOptions, OutboxOptions } from './options.js';
export {
  type BoundOutbox,
  type CheckerSelector,
  createOutbox,
  type DeadMessage,
  type Outbox,
  type OutboxStats,
} from './outbox.js';
export type { OutboundRecord, Publisher } from './publisher.js';
export { createRelay, type Relay, type RelayOptions } from './relay/index.js';
export {
  createScheduler,
  type JobName,
  type OutboxJobOptions,
  outboxJobs,
  type SchedulerOptions,
} from './scheduler.js';
