import {
  type BackoffPolicy,
  backoff,
  backoffDelay,
  InvalidOptionError,
  identifier,
  integer,
  knownKeys,
  qualified,
  runMigrations,
  TypedEmitter,
  topicName,
} from '@eventual/core';
import type { BoundOutbox, JsonValue, Message, Outbox } from '@eventual/outbox';
import type { Knex } from 'knex';
import type { AnySagaDefinition, CommandSpec, SagaData, SagaDefinition, StepDefinition } from './definition.js';
import { SagaConcurrencyError, SagaStateError } from './errors.js';
import { sagaMigrations } from './migrations.js';
import { commandHeaders, parseSagaReply, type ReplyOutcome, type SagaPhase } from './protocol.js';
import { countSagasByStatus, insertSaga, listSagas, lockDueSagas, selectSaga, updateSaga } from './sql/sagas.js';
import { runSagaStatement } from './sql/statement.js';
import type { SagaHistoryEntry, SagaRow, SagaStatus } from './state.js';

/** A saga instance as the query functions return it. */
export interface SagaInstance<D extends SagaData = SagaData> {
  id: string;
  type: string;
  status: SagaStatus;
  /** Name of the step being executed or compensated (the last one, once finished). */
  step: string;
  attempt: number;
  data: D;
  version: number;
  waiting: 'reply' | 'retry' | null;
  wakeAt: Date | null;
  lastError: string | null;
  history: SagaHistoryEntry[];
  createdAt: Date;
  updatedAt: Date;
}

export interface SagaEventMap {
  'saga:started': { sagaId: string; type: string };
  'saga:completed': { sagaId: string; type: string };
  'saga:compensating': { sagaId: string; type: string; fromStep: string; reason: string };
  'saga:compensated': { sagaId: string; type: string };
  /** A compensation kept failing: the saga needs attention; `resume(sagaId)` after a fix. */
  'saga:failed': { sagaId: string; type: string; step: string; error: string };
  /** A reply that does not match what the saga waits for (duplicate, late or reordered). */
  'saga:replyIgnored': { sagaId: string; step: number; phase: string; reason: string };
}

export interface OrchestratorOptions {
  /** The orchestrator's own database (where saga instances live). */
  knex: Knex;
  /** The orchestrator service's outbox: commands go out through it. */
  outbox: Outbox;
  /** Topic participants reply to; consume it with the orchestrator's `replyHandler`. */
  replyTopic: string;
  sagas: ReadonlyArray<AnySagaDefinition>;
  schema?: string;
  table?: string;
  /** Attempts at a compensation before the saga goes `failed`. Default 10. */
  maxCompensationAttempts?: number;
  /** Delay between retries of a failed step or compensation. Default 1 s doubling to 60 s, 20% jitter. */
  retryBackoff?: { initialMs?: number; maxMs?: number; factor?: number; jitter?: number };
  /** Due sagas handled per sweep. Default 100. */
  sweepBatchSize?: number;
}

const MAX_HISTORY = 200;

export interface SagaOrchestrator {
  migrate(): Promise<void>;
  /** Starts a saga inside the caller's transaction; an existing id is returned unchanged. */
  start<D extends SagaData>(
    trx: Knex.Transaction,
    saga: SagaDefinition<D>,
    input: { id: string; data: D },
  ): Promise<SagaInstance<D>>;
  /** Consumer handler for `SagaReply` messages on `replyTopic`: advances the saga in the record's transaction. */
  replyHandler: (context: { trx: Knex.Transaction; message: Message; outbox: BoundOutbox }) => Promise<void>;
  /** Applies deadlines and due retries; schedule it once per cluster (it returns how many sagas it moved). */
  sweep(): Promise<number>;
  /** Moves a `failed` saga back to compensating and retries the compensation that failed. */
  resume(sagaId: string): Promise<SagaInstance>;
  get(sagaId: string): Promise<SagaInstance | undefined>;
  list(options?: { status?: SagaStatus; type?: string; limit?: number; afterId?: string }): Promise<SagaInstance[]>;
  countByStatus(): Promise<Partial<Record<SagaStatus, number>>>;
  on<E extends keyof SagaEventMap>(event: E, listener: (payload: SagaEventMap[E]) => void): () => void;
}

/**
 * Drives sagas forward and, when a step fails, compensates the completed steps in
 * reverse order. Saga state advances in the same transaction that consumes the reply
 * and emits the next command, so a duplicate reply can never advance it twice.
 */
export function createSagaOrchestrator(options: OrchestratorOptions): SagaOrchestrator {
  knownKeys('createSagaOrchestrator', options, [
    'knex',
    'outbox',
    'replyTopic',
    'sagas',
    'schema',
    'table',
    'maxCompensationAttempts',
    'retryBackoff',
    'sweepBatchSize',
  ]);
  const schema = identifier('schema', options.schema ?? 'eventual');
  const table = identifier('table', options.table ?? 'sagas');
  const replyTopic = topicName('replyTopic', options.replyTopic);
  const maxCompensationAttempts = integer('maxCompensationAttempts', options.maxCompensationAttempts ?? 10, 1, 1_000);
  const retryPolicy: BackoffPolicy = backoff('retryBackoff', options.retryBackoff, {
    initialMs: 1_000,
    maxMs: 60_000,
    factor: 2,
    jitter: 0.2,
  });
  const sweepBatchSize = integer('sweepBatchSize', options.sweepBatchSize ?? 100, 1, 10_000);
  const { knex, outbox } = options;
  const definitions = new Map<string, SagaDefinition<SagaData>>();
  for (const saga of options.sagas ?? []) {
    if (definitions.has(saga.name)) throw new InvalidOptionError(`saga '${saga.name}' is registered twice`);
    definitions.set(saga.name, saga as unknown as SagaDefinition<SagaData>);
  }
  if (definitions.size === 0)
    throw new InvalidOptionError('createSagaOrchestrator needs sagas: [defineSaga(...).build(), ...]');
  const sagas = qualified(schema, table);
  const events = new TypedEmitter<SagaEventMap>();

  const definitionOf = (type: string) => {
    const definition = definitions.get(type);
    if (!definition) throw new SagaStateError(`no saga named '${type}' is registered with this orchestrator`);
    return definition;
  };

  /** Events are emitted once the transaction has committed, never for work that rolled back. */
  const afterCommit = (trx: Knex.Transaction, emit: () => void) => {
    trx.executionPromise.then(emit, () => {});
  };

  /** One saga being advanced inside one transaction. */
  class Run {
    constructor(
      readonly trx: Knex.Transaction,
      readonly send: BoundOutbox,
      readonly definition: SagaDefinition<SagaData>,
      readonly row: SagaRow,
    ) {}

    get data(): SagaData {
      return this.row.data as SagaData;
    }

    step(index = this.row.step): StepDefinition<SagaData> {
      return this.definition.steps[index]!;
    }

    log(phase: SagaPhase, event: SagaHistoryEntry['event'], detail?: string, index = this.row.step): void {
      const entry: SagaHistoryEntry = {
        at: new Date().toISOString(),
        step: this.step(index).name,
        phase,
        event,
        attempt: this.row.attempt,
      };
      if (detail !== undefined) entry.detail = detail.slice(0, 500);
      this.row.history = [...this.row.history, entry].slice(-MAX_HISTORY);
    }

    async sendCommand(command: CommandSpec<SagaData>, phase: SagaPhase): Promise<void> {
      this.row.attempt += 1;
      const { id, type } = this.row;
      await this.send.enqueue({
        topic: command.topic,
        key: command.key?.(this.data, id) ?? id,
        type: command.type,
        payload: command.payload(this.data, id),
        correlationId: id,
        headers: commandHeaders({
          sagaId: id,
          sagaType: type,
          step: this.row.step,
          phase,
          attempt: this.row.attempt,
          replyTo: replyTopic,
        }),
      });
      this.log(phase, 'sent');
      this.row.waiting = 'reply';
      const deadline = this.step().deadline;
      this.row.wakeAt = deadline ? new Date(Date.now() + deadline.afterMs) : null;
    }

    /** Runs a local action in a savepoint, so a throwing action leaves no partial writes. */
    async runLocal(
      action: NonNullable<StepDefinition<SagaData>['local']>,
    ): Promise<{ ok: true } | { ok: false; error: string }> {
      try {
        const next = await this.trx.transaction(async (savepoint) =>
          action({ trx: savepoint, sagaId: this.row.id, data: this.data }),
        );
        if (next !== undefined) this.row.data = next;
        return { ok: true };
      } catch (error) {
        return { ok: false, error: describe(error) };
      }
    }

    /** Executes forward from the current step until a command is in flight or the saga completed. */
    async forward(): Promise<void> {
      while (this.row.step < this.definition.steps.length) {
        const step = this.step();
        if (step.command) return this.sendCommand(step.command, 'forward');
        this.row.attempt += 1;
        const outcome = await this.runLocal(step.local!);
        if (!outcome.ok) {
          this.log('forward', 'failed', outcome.error);
          return this.startCompensation(this.row.step - 1, `step '${step.name}' failed: ${outcome.error}`);
        }
        this.log('forward', 'ran');
        this.row.step += 1;
        this.row.attempt = 0;
      }
      this.row.step = this.definition.steps.length - 1;
      this.finish('completed');
      const { id, type } = this.row;
      afterCommit(this.trx, () => events.emit('saga:completed', { sagaId: id, type }));
    }

    async startCompensation(fromStep: number, reason: string): Promise<void> {
      const failedStep = this.step(Math.min(this.row.step, this.definition.steps.length - 1)).name;
      this.row.status = 'compensating';
      this.row.step = fromStep;
      this.row.attempt = 0;
      this.row.lastError = reason;
      const { id, type } = this.row;
      afterCommit(this.trx, () => events.emit('saga:compensating', { sagaId: id, type, fromStep: failedStep, reason }));
      return this.compensate();
    }

    /** Compensates from the current step down to step 0, skipping steps without compensation. */
    async compensate(): Promise<void> {
      while (this.row.step >= 0) {
        const compensation = this.step().compensation;
        if (!compensation) {
          this.row.step -= 1;
          continue;
        }
        if (compensation.command) return this.sendCommand(compensation.command, 'compensate');
        this.row.attempt += 1;
        const outcome = await this.runLocal(compensation.local!);
        if (!outcome.ok) return this.compensationFailed(outcome.error);
        this.log('compensate', 'ran');
        this.row.step -= 1;
        this.row.attempt = 0;
      }
      this.row.step = 0;
      this.finish('compensated');
      const { id, type } = this.row;
      afterCommit(this.trx, () => events.emit('saga:compensated', { sagaId: id, type }));
    }

    /** Compensations are retried with backoff until they succeed, or `failed` after the limit. */
    compensationFailed(error: string): void {
      this.log('compensate', 'failed', error);
      this.row.lastError = `compensation of step '${this.step().name}' failed (attempt ${this.row.attempt}): ${error}`;
      if (this.row.attempt >= maxCompensationAttempts) {
        this.finish('failed');
        const { id, type, lastError } = this.row;
        const step = this.step().name;
        afterCommit(this.trx, () => events.emit('saga:failed', { sagaId: id, type, step, error: lastError ?? error }));
        return;
      }
      this.scheduleRetry();
    }

    scheduleRetry(): void {
      this.row.waiting = 'retry';
      this.row.wakeAt = new Date(Date.now() + backoffDelay(this.row.attempt, retryPolicy));
    }

    finish(status: 'completed' | 'compensated' | 'failed'): void {
      this.row.status = status;
      this.row.waiting = null;
      this.row.wakeAt = null;
    }

    async onReply(outcome: ReplyOutcome, retriable: boolean, payload: JsonValue): Promise<void> {
      const step = this.step();
      if (this.row.status === 'running') {
        if (outcome === 'success') {
          if (step.onReply) this.row.data = step.onReply(this.data, payload);
          this.log('forward', 'succeeded');
          this.row.step += 1;
          this.row.attempt = 0;
          return this.forward();
        }
        if (step.onFailure) this.row.data = step.onFailure(this.data, payload);
        const reason = describeReply(payload);
        this.log('forward', 'failed', reason);
        if (retriable && this.row.attempt < step.retry.maxAttempts) return this.scheduleRetry();
        // A failure reply means the participant applied nothing: compensate the steps before it.
        return this.startCompensation(this.row.step - 1, `step '${step.name}' failed: ${reason}`);
      }
      if (outcome === 'success') {
        this.log('compensate', 'succeeded');
        this.row.step -= 1;
        this.row.attempt = 0;
        return this.compensate();
      }
      return this.compensationFailed(describeReply(payload));
    }

    /** The wake-up time passed: a reply deadline (timeout) or a scheduled retry. */
    async onWake(): Promise<void> {
      const step = this.step();
      const phase: SagaPhase = this.row.status === 'running' ? 'forward' : 'compensate';
      if (this.row.waiting === 'reply') this.log(phase, 'timed-out');
      if (phase === 'compensate') {
        if (this.row.waiting === 'reply' && this.row.attempt >= maxCompensationAttempts) {
          return this.compensationFailed('no reply before the deadline');
        }
        return this.compensate();
      }
      if (
        this.row.waiting === 'retry' ||
        (step.deadline?.onTimeout === 'retry' && this.row.attempt < step.retry.maxAttempts)
      ) {
        return this.sendCommand(step.command!, 'forward');
      }
      // No reply: the participant may or may not have acted, so this step is compensated
      // too (a participant built with createParticipant treats an undo of nothing as a no-op).
      return this.startCompensation(
        this.row.step,
        `step '${step.name}' got no reply within ${step.deadline?.afterMs} ms`,
      );
    }

    async save(): Promise<void> {
      const [updated] = await runSagaStatement(this.trx, updateSaga(sagas, this.row, JSON.stringify(this.row.data)));
      if (!updated) throw new SagaConcurrencyError(this.row.id);
    }
  }

  const toInstance = <D extends SagaData>(row: SagaRow): SagaInstance<D> => {
    const definition = definitions.get(row.type);
    return {
      id: row.id,
      type: row.type,
      status: row.status,
      step: definition?.steps[row.step]?.name ?? String(row.step),
      attempt: row.attempt,
      data: row.data as D,
      version: row.version,
      waiting: row.waiting,
      wakeAt: row.wakeAt,
      lastError: row.lastError,
      history: row.history,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  };

  return {
    async migrate() {
      await runMigrations(knex, schema, `${table}_migrations`, sagaMigrations({ schema, table }));
    },

    async start(trx, saga, { id, data }) {
      if (typeof trx !== 'function' || (trx as { isTransaction?: boolean }).isTransaction !== true) {
        throw new InvalidOptionError(
          'start(trx, saga, input) needs the knex transaction of the change that starts the saga',
        );
      }
      if (typeof id !== 'string' || id.length === 0 || id.length > 200)
        throw new InvalidOptionError(
          `saga id must be a non-empty string of at most 200 characters, got ${JSON.stringify(id)}`,
        );
      if (definitions.get(saga.name) !== (saga as unknown))
        throw new InvalidOptionError(`saga '${saga.name}' is not registered with this orchestrator`);
      const [inserted] = await runSagaStatement<SagaRow>(
        trx,
        insertSaga(sagas, { id, type: saga.name }, JSON.stringify(data)),
      );
      if (!inserted) {
        const [existing] = await runSagaStatement<SagaRow>(trx, selectSaga(sagas, id));
        return toInstance<typeof data>(existing!);
      }
      const run = new Run(trx, outbox.bind(trx, { correlationId: id }), definitionOf(saga.name), inserted);
      await run.forward();
      await run.save();
      afterCommit(trx, () => events.emit('saga:started', { sagaId: id, type: saga.name }));
      return toInstance<typeof data>({ ...run.row, version: run.row.version + 1 });
    },

    async replyHandler({ trx, message, outbox: send }) {
      const { sagaId, step, phase, outcome, retriable } = parseSagaReply(message);
      const [row] = await runSagaStatement<SagaRow>(trx, selectSaga(sagas, sagaId));
      const ignore = (reason: string) =>
        afterCommit(trx, () => events.emit('saga:replyIgnored', { sagaId, step, phase, reason }));
      if (!row) return ignore('no such saga');
      const expected = row.status === 'running' ? 'forward' : row.status === 'compensating' ? 'compensate' : null;
      if (expected === null) return ignore(`saga is ${row.status}`);
      if (phase !== expected || step !== row.step)
        return ignore(`saga waits for step ${row.step} (${expected}), reply is for step ${step} (${phase})`);
      if (row.waiting === null) return ignore('saga waits for nothing');
      const run = new Run(trx, send, definitionOf(row.type), row);
      await run.onReply(outcome, retriable, message.payload);
      await run.save();
    },

    async sweep() {
      return knex.transaction(async (trx) => {
        const due = await runSagaStatement<SagaRow>(trx, lockDueSagas(sagas, sweepBatchSize));
        for (const row of due) {
          const run = new Run(trx, outbox.bind(trx, { correlationId: row.id }), definitionOf(row.type), row);
          await run.onWake();
          await run.save();
        }
        return due.length;
      });
    },

    async resume(sagaId) {
      return knex.transaction(async (trx) => {
        const [row] = await runSagaStatement<SagaRow>(trx, selectSaga(sagas, sagaId));
        if (!row) throw new SagaStateError(`no saga with id ${sagaId}`);
        if (row.status !== 'failed')
          throw new SagaStateError(`saga ${sagaId} is ${row.status}; only a failed saga can be resumed`);
        const run = new Run(trx, outbox.bind(trx, { correlationId: sagaId }), definitionOf(row.type), row);
        run.row.status = 'compensating';
        run.row.attempt = 0;
        run.log('compensate', 'resumed');
        await run.compensate();
        await run.save();
        return toInstance({ ...run.row, version: run.row.version + 1 });
      });
    },

    async get(sagaId) {
      const [row] = await runSagaStatement<SagaRow>(knex, selectSaga(sagas, sagaId));
      return row ? toInstance(row) : undefined;
    },

    async list({ status, type, limit = 100, afterId } = {}) {
      integer('limit', limit, 1, 10_000);
      const filter = { status: status ?? null, type: type ?? null, afterId: afterId ?? null, limit };
      return (await runSagaStatement<SagaRow>(knex, listSagas(sagas, filter))).map((row) => toInstance(row));
    },

    async countByStatus() {
      const counts: Partial<Record<SagaStatus, number>> = {};
      const rows = await runSagaStatement<{ status: SagaStatus; count: number }>(knex, countSagasByStatus(sagas));
      for (const { status, count } of rows) counts[status] = count;
      return counts;
    },

    on: (event, listener) => events.on(event, listener),
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describeReply(payload: JsonValue): string {
  if (payload && typeof payload === 'object' && !Array.isArray(payload) && typeof payload.reason === 'string')
    return payload.reason;
  return JSON.stringify(payload ?? null).slice(0, 300);
}
