import {
  describeValue,
  InvalidOptionError,
  isMessageType,
  isTopicName,
  jsonProblem,
  MESSAGE_TYPE_RULE,
  TOPIC_RULE,
} from '@eventual/core';
import type { JsonValue } from '@eventual/outbox';
import type { Knex } from 'knex';

/**
 * Saga data: a plain object of JSON values (a `type` or an `interface`), stored with
 * the saga instance and handed to every step. Checked where it is stored (at start,
 * after every reply fold and local step): anything JSON would not give back as it
 * was (undefined, functions, Dates, class instances, NaN...) is refused, naming the path.
 */
export type SagaData = object;

/** Why `value` cannot be stored as saga data, or undefined if it can. */
export function sagaDataProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return `saga data must be a plain object, got ${describeValue(value)}`;
  return jsonProblem(value, 'data', { allowDates: false });
}

/** What a local step or a local compensation is given. */
export interface LocalStepContext<D extends SagaData> {
  /** The orchestrator's transaction: local writes commit with the saga's progress. */
  trx: Knex.Transaction;
  /** The saga instance's id. */
  sagaId: string;
  /** The saga data as stored so far; to change it, return the new data from the action. */
  data: Readonly<D>;
}

/** A local step or compensation: writes in the orchestrator's database; may return new data (or nothing). */
export type LocalAction<D extends SagaData> = (
  context: LocalStepContext<D>,
  // biome-ignore lint/suspicious/noConfusingVoidType: a step with no new data simply returns (async () => { await ... })
) => Promise<D | undefined | void> | D | undefined | void;

/** A command sent to a participant through the outbox. */
export interface CommandSpec<D extends SagaData> {
  /** The participant's command topic: a legal Kafka topic name. */
  topic: string;
  /** The message type the participant dispatches on: `MESSAGE_TYPE_RULE` of core, as for any enqueued message. */
  type: string;
  /** Partition key; defaults to the saga id. */
  key?: (data: Readonly<D>, sagaId: string) => string;
  /** Builds the command's payload from the saga data, again for every send (a retry builds it anew). */
  payload: (data: Readonly<D>, sagaId: string) => JsonValue;
}

/** Folds a reply (as `parse` returned it, or the raw JSON payload) into the saga data. */
export type ReplyHandler<D extends SagaData, R = JsonValue> = (data: Readonly<D>, reply: R) => D;

/** A step's reply handling as stored: the optional `parse` and the fold. */
export interface ReplyFold<D extends SagaData> {
  /** Validates and types the reply payload; a throw becomes `InvalidReplyError`. */
  parse?: (payload: JsonValue) => unknown;
  /** The new saga data from the current data and the reply; refused with `InvalidSagaDataError` if not storable. */
  fold: (data: Readonly<D>, reply: unknown) => D;
}

/** How often a participant step's command may be sent (`StepBuilder.retry`): 1 to 100 times, default 1. */
export interface RetryPolicy {
  /** Commands sent in all before giving up (1 = no retry). */
  maxAttempts: number;
}

/**
 * How long a participant step waits for a reply, and what then (`StepBuilder.deadline`),
 * applied by the orchestrator's sweep. The same wait applies to the step's
 * compensation command, which is sent again on a timeout (whatever `onTimeout` says)
 * until `maxCompensationAttempts`.
 */
export interface DeadlinePolicy {
  /** How long to wait for a reply after sending the command. */
  afterMs: number;
  /** `retry`: send the command again (within the retry policy), then compensate. `compensate`: at once. */
  onTimeout: 'retry' | 'compensate';
}

/** One step as the builder stores it; exactly one of `local` and `command` is set. */
export interface StepDefinition<D extends SagaData> {
  /**
   * Unique in its saga, matching `/^[A-Za-z][A-Za-z0-9_.:-]{0,99}$/`: what events,
   * errors and a saga instance's `step` call it (stored rows and commands hold its index).
   */
  name: string;
  /** The action of a local step (`invokeLocal`). */
  local?: LocalAction<D>;
  /** The command of a participant step (`invokeParticipant`). */
  command?: CommandSpec<D>;
  /** How a success reply changes the data; without it the data stays as it was. */
  onReply?: ReplyFold<D>;
  /** How a failure reply changes the data, before the step is retried or compensation begins. */
  onFailure?: ReplyFold<D>;
  /** What undoes the step, a local action or a command; without it compensation passes over the step. */
  compensation?: { local?: LocalAction<D>; command?: CommandSpec<D> };
  /** How often the command may be sent. Default `{ maxAttempts: 1 }`. */
  retry: RetryPolicy;
  /** How long to wait for a reply; without it the saga waits as long as it takes. */
  deadline?: DeadlinePolicy;
}

/** Any saga definition, whatever its data type: what an orchestrator is given. */
export interface AnySagaDefinition {
  /**
   * The `defineSaga` name: stored as each instance's type and sent as the `saga-type`
   * header, by which the orchestrator finds the definition again, so renaming a saga
   * strands its instances in flight.
   */
  readonly name: string;
  /** The steps in order (`StepDefinition`s of the saga's own data type). */
  readonly steps: ReadonlyArray<object>;
}

/**
 * A saga whose data is `D`, as `build()` returns it (frozen): register it with
 * `createSagaOrchestrator({ sagas })`, then pass it to `orchestrator.start`.
 */
export interface SagaDefinition<D extends SagaData> extends AnySagaDefinition {
  /** The steps in order; compensation walks them backwards. */
  readonly steps: ReadonlyArray<StepDefinition<D>>;
}

const NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,99}$/;

/**
 * Declares a saga: an ordered list of steps, each either local (a function run in
 * the orchestrator's transaction) or a participant command whose reply advances the
 * saga, each with an optional compensation. Vocabulary from Eventuate:
 *
 *   defineSaga<OrderData>('create-order')
 *     .step('charge-payment')
 *       .invokeParticipant({ topic: 'payment.commands', type: 'ChargePayment', payload: (d) => ({ ... }) })
 *       .onReply((data, reply) => ({ ...data, paymentId: reply.paymentId }))
 *       .withCompensation({ topic: 'payment.commands', type: 'RefundPayment', payload: (d) => ({ ... }) })
 *       .retry({ maxAttempts: 3 })
 *       .deadline({ afterMs: 30_000, onTimeout: 'retry' })
 *     .step('complete-order').invokeLocal(async ({ trx, data }) => { ... })
 *     .build();
 */
export function defineSaga<D extends SagaData>(name: string): SagaBuilder<D> {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidOptionError(`saga name must match ${NAME} (e.g. 'create-order'), got ${JSON.stringify(name)}`);
  }
  return new SagaBuilder<D>(name, []);
}

/**
 * A saga being declared: `defineSaga(name)` returns one, `step()` adds a step and
 * `build()` ends the declaration. Every method checks its input and throws
 * `InvalidOptionError` naming the saga and step.
 */
export class SagaBuilder<D extends SagaData> {
  constructor(
    readonly name: string,
    protected readonly steps: StepDefinition<D>[],
  ) {}

  /** Starts a new step; configure it with the methods of the returned builder. */
  step(stepName: string): StepBuilder<D> {
    if (typeof stepName !== 'string' || !NAME.test(stepName)) {
      throw new InvalidOptionError(`saga ${this.name}: step name must match ${NAME}, got ${JSON.stringify(stepName)}`);
    }
    if (this.steps.some((s) => s.name === stepName))
      throw new InvalidOptionError(`saga ${this.name}: step '${stepName}' is declared twice`);
    const steps = [...this.steps, { name: stepName, retry: { maxAttempts: 1 } }];
    return new StepBuilder<D>(this.name, steps);
  }

  /**
   * The frozen definition. Throws `InvalidOptionError` if the saga has no steps or a
   * step has neither `invokeLocal` nor `invokeParticipant`.
   */
  build(): SagaDefinition<D> {
    if (this.steps.length === 0) throw new InvalidOptionError(`saga ${this.name} has no steps`);
    for (const step of this.steps) {
      if (!step.local && !step.command) {
        throw new InvalidOptionError(
          `saga ${this.name}: step '${step.name}' needs invokeLocal(...) or invokeParticipant(...)`,
        );
      }
    }
    return Object.freeze({ name: this.name, steps: Object.freeze(this.steps.map((s) => Object.freeze({ ...s }))) });
  }
}

/**
 * The builder of the step just added: give it exactly one of `invokeLocal` and
 * `invokeParticipant`, then its options; `step()` adds the next step, `build()` ends.
 */
export class StepBuilder<D extends SagaData> extends SagaBuilder<D> {
  private get current(): StepDefinition<D> {
    return this.steps[this.steps.length - 1]!;
  }

  /**
   * Sets fields of the current step by replacing it with a copy in this builder's own
   * array: an earlier builder of the chain shares the step objects, and must not see
   * what is declared on a later one.
   */
  private update(fields: Partial<StepDefinition<D>>): this {
    this.steps[this.steps.length - 1] = { ...this.current, ...fields };
    return this;
  }

  private where(): string {
    return `saga ${this.name}, step '${this.current.name}'`;
  }

  /** The step runs `action` in the orchestrator's transaction. */
  invokeLocal(action: LocalAction<D>): this {
    if (typeof action !== 'function') throw new InvalidOptionError(`${this.where()}: invokeLocal needs a function`);
    if (this.current.local || this.current.command)
      throw new InvalidOptionError(`${this.where()}: the step already has an action`);
    return this.update({ local: action });
  }

  /** The step sends `command` to a participant and waits for its reply. */
  invokeParticipant(command: CommandSpec<D>): this {
    if (this.current.local || this.current.command)
      throw new InvalidOptionError(`${this.where()}: the step already has an action`);
    return this.update({ command: checkCommand(this.where(), command) });
  }

  /**
   * Folds a success reply into the saga data. With `parse` first, the fold gets what
   * `parse` returned (validate and type the reply there). A `parse` that throws
   * rejects the reply record non-retriably (`InvalidReplyError`): the consumer
   * dead-letters it with the parse error and the saga keeps waiting, so the step's
   * deadline (if any) applies.
   */
  onReply(fold: ReplyHandler<D>): this;
  /** With `parse`: it validates and types the success reply, and `fold` gets what it returned. */
  onReply<R>(parse: (payload: JsonValue) => R, fold: ReplyHandler<D, R>): this;
  /** Either form: one function is the fold, two are `parse` and the fold. */
  onReply<R>(first: ReplyHandler<D> | ((payload: JsonValue) => R), second?: ReplyHandler<D, R>): this {
    return this.replyFold('onReply', first, second);
  }

  /** Folds a failure reply into the saga data (e.g. the decline reason) before compensating; `parse` as for onReply. */
  onFailure(fold: ReplyHandler<D>): this;
  /** With `parse`: it validates and types the failure reply, and `fold` gets what it returned. */
  onFailure<R>(parse: (payload: JsonValue) => R, fold: ReplyHandler<D, R>): this;
  /** Either form: one function is the fold, two are `parse` and the fold. */
  onFailure<R>(first: ReplyHandler<D> | ((payload: JsonValue) => R), second?: ReplyHandler<D, R>): this {
    return this.replyFold('onFailure', first, second);
  }

  /** What undoes this step once a later step fails: a local action or a participant command. */
  withCompensation(compensation: LocalAction<D> | CommandSpec<D>): this {
    if (this.current.compensation) throw new InvalidOptionError(`${this.where()}: the step already has a compensation`);
    return this.update({
      compensation:
        typeof compensation === 'function'
          ? { local: compensation }
          : { command: checkCommand(`${this.where()} compensation`, compensation) },
    });
  }

  /** Sends the command up to `maxAttempts` times (on retriable failure replies or timeouts) before compensating. */
  retry(policy: RetryPolicy): this {
    this.requireParticipant('retry');
    if (!Number.isInteger(policy?.maxAttempts) || policy.maxAttempts < 1 || policy.maxAttempts > 100) {
      throw new InvalidOptionError(`${this.where()}: retry.maxAttempts must be an integer between 1 and 100`);
    }
    return this.update({ retry: { maxAttempts: policy.maxAttempts } });
  }

  /** What happens when no reply came within `afterMs` (swept by the orchestrator's scheduler). */
  deadline(policy: DeadlinePolicy): this {
    this.requireParticipant('deadline');
    if (!Number.isInteger(policy?.afterMs) || policy.afterMs < 1)
      throw new InvalidOptionError(`${this.where()}: deadline.afterMs must be a positive integer`);
    if (policy.onTimeout !== 'retry' && policy.onTimeout !== 'compensate') {
      throw new InvalidOptionError(`${this.where()}: deadline.onTimeout must be 'retry' or 'compensate'`);
    }
    return this.update({ deadline: { afterMs: policy.afterMs, onTimeout: policy.onTimeout } });
  }

  private replyFold<R>(method: 'onReply' | 'onFailure', first: unknown, second: ReplyHandler<D, R> | undefined): this {
    this.requireParticipant(method);
    if (second === undefined) {
      if (typeof first !== 'function') throw new InvalidOptionError(`${this.where()}: ${method} needs a function`);
      return this.update({ [method]: { fold: first as ReplyFold<D>['fold'] } });
    }
    if (typeof first !== 'function' || typeof second !== 'function')
      throw new InvalidOptionError(`${this.where()}: ${method}(parse, fold) needs two functions`);
    return this.update({ [method]: { parse: first as ReplyFold<D>['parse'], fold: second as ReplyFold<D>['fold'] } });
  }

  private requireParticipant(method: string): void {
    if (!this.current.command)
      throw new InvalidOptionError(
        `${this.where()}: ${method}() applies to a participant step; call invokeParticipant(...) first`,
      );
  }
}

function checkCommand<D extends SagaData>(where: string, command: CommandSpec<D>): CommandSpec<D> {
  if (command === null || typeof command !== 'object')
    throw new InvalidOptionError(`${where}: a command needs { topic, type, payload }`);
  if (!isTopicName(command.topic))
    throw new InvalidOptionError(`${where}: command topic must be ${TOPIC_RULE}, got ${JSON.stringify(command.topic)}`);
  // The outbox's own rule: a type a saga sends is one any enqueue accepts, and no other.
  if (!isMessageType(command.type))
    throw new InvalidOptionError(
      `${where}: command type must be ${MESSAGE_TYPE_RULE}, got ${describeValue(command.type)}`,
    );
  if (typeof command.payload !== 'function')
    throw new InvalidOptionError(`${where}: command payload must be a function (data, sagaId) => JSON`);
  if (command.key !== undefined && typeof command.key !== 'function')
    throw new InvalidOptionError(`${where}: command key must be a function (data, sagaId) => string`);
  return { ...command };
}
