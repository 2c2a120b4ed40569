export {
  BrokerUnreachableError,
  type EnsuredTopic,
  type EnsureKafkaTopicsOptions,
  EventualError,
  type EventualErrorCode,
  type EventualErrorCodes,
  ensureKafkaTopics,
  InvalidOptionError,
  TopicMismatchError,
  TopicNotFoundError,
  type TopicSpec,
} from '@eventual/outbox';
export type { HealthCheck, HealthOptions, ServiceHealth } from './health.js';
export { type HealthRequestListener, type HealthSource, healthHandler } from './http.js';
export type {
  CommandSpec,
  ConsumerSettings,
  HandlerSpec,
  ParsedSpec,
  ServiceConsumerOptions,
  ServiceOptions,
  ServiceSagaOptions,
} from './options.js';
export { parsed, parsedCommand } from './options.js';
export { createService, type Service } from './service.js';
export { type KafkaTransportOptions, kafkaTransport, type Transport } from './transport.js';
