export {
  BrokerUnreachableError,
  type EnsuredTopic,
  TopicMismatchError,
  TopicNotFoundError,
  type TopicSpec,
} from '@eventual/core';
export { type Consumer, type ConsumerLag, type ConsumerState, createConsumer, type PartitionLag } from './consumer.js';
export { DLQ_HEADER } from './dead-letter-message.js';
export {
  IllegalInboxTransitionError,
  NonRetriableError,
  TransactionAbortedError,
  TransactionOwnedByConsumerError,
} from './errors.js';
export type {
  ConsumerCounters,
  ConsumerEventMap,
  ConsumerEventName,
  DeadLetterReason,
  RecordPosition,
} from './events.js';
export { observeConsumerGauges } from './gauges.js';
export type { Handler, HandlerContext, HandlerOptions } from './handler.js';
export { createKafkaSubscriber, type KafkaSubscriberOptions } from './kafka-subscriber.js';
export { type InboxSchemaOptions, inboxMigrations, migrateInbox } from './migrations.js';
export type { ConsumerOptions, ResolvedConsumerOptions, RetentionOptions } from './options.js';
export type {
  Delivery,
  InboundRecord,
  Subscriber,
  SubscriptionHandlers,
  TopicPartition,
} from './subscriber.js';
