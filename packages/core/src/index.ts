export { type BackoffPolicy, backoffDelay, OUTAGE_BACKOFF } from './backoff.js';
export {
  type BrokerFailure,
  BrokerUnreachableError,
  connectTimeout,
  DEFAULT_CONNECT_TIMEOUT_MS,
  OutageTracker,
  TopicMismatchError,
  TopicNotFoundError,
} from './broker.js';
export {
  asError,
  DatabaseError,
  DatabaseUnavailableError,
  EventualError,
  type EventualErrorCode,
  type EventualErrorCodes,
  errorMessage,
  InvalidOptionError,
  isMissingSchema,
  SchemaNotReadyError,
  sqlStateOf,
} from './errors.js';
export { TypedEmitter } from './events.js';
export { describeValue, jsonProblem } from './json.js';
export { databaseOf, isKnex, isKnexTransaction, sameDatabase } from './knex.js';
export { type Lifecycle, LifecycleError, type LifecycleHooks, type LifecycleState, lifecycle } from './lifecycle.js';
export { type Listener, startListener } from './listener.js';
export { type LogEntry, type Logger, type LogLevel, safeLog, silentLogger, stderrLogger } from './logger.js';
export {
  type Migration,
  migrationSource,
  runMigrations,
  type TableMigrationOptions,
  type TableUpgrade,
  tableMigrations,
} from './migrations.js';
export {
  defaultInstanceId,
  identifier,
  isMessageType,
  isTopicName,
  MESSAGE_TYPE_RULE,
  qualified,
  TOPIC_RULE,
  topicName,
} from './names.js';
export { causeChain, isDatabaseOutage } from './outage.js';
export { createRunCoordinator, type PostgresRunCoordinator } from './scheduler/run-coordinator.js';
export {
  createScheduler,
  type PeriodicJob,
  type Scheduler,
  type SchedulerEventMap,
  type SchedulerOptions,
} from './scheduler/scheduler.js';
export {
  type FailedStatement,
  type Statement,
  type StatementRunner,
  schemaTranslator,
  statementRunner,
} from './sql/statement.js';
export {
  durationHistogram,
  failSpan,
  type GaugeReading,
  type GaugeReadOptions,
  type GaugeSpec,
  instruments,
  MESSAGING,
  messageCounter,
  observeGauges,
  spanContextFromHeaders,
  type TelemetryApi,
  TRACE_HEADER,
  type Tracing,
  traceHeaders,
  tracing,
} from './telemetry.js';
export {
  compareTopic,
  type EnsuredTopic,
  type ResolvedTopicSpec,
  type TopicSpec,
  topicSpecs,
} from './topic-spec.js';
export {
  type BackoffOptions,
  backoff,
  bool,
  fraction,
  func,
  integer,
  isUuid,
  knownKeys,
  loggerOption,
  nonEmptyString,
  object,
  oneOf,
  optionsObject,
} from './validate.js';
export { sleep, Wakeable } from './wait.js';
