import {
  backoffDelay,
  errorMessage,
  InvalidOptionError,
  integer,
  isKnexTransaction,
  type PeriodicJob,
  runMigrations,
  TypedEmitter,
} from '@eventual/core';
import type { BoundOutbox } from '@eventual/outbox';
import type { Knex } from 'knex';
import { type LocalAction, type SagaData, type SagaDefinition, sagaDataProblem } from './definition.js';
import { InvalidSagaDataError, SagaConcurrencyError, SagaStateError } from './errors.js';
import type { SagaEventMap, SagaNotice } from './events.js';
import { registerGaugeSource } from './gauges.js';
import { sagaMigrations } from './migrations.js';
import { type OrchestratorOptions, type ResolvedOrchestratorOptions, resolveOrchestratorOptions } from './options.js';
import { parseSagaReply, type SagaMessageHandler } from './protocol.js';
import { drive, type LocalOutcome, type MachineDeps, type SagaEvent } from './run.js';
import { countSagasByStatus, insertSaga, listSagas, lockDueSagas, selectSaga, updateSaga } from './sql/sagas.js';
import { runSagaStatement as run } from './sql/statement.js';
import type { SagaHistoryEntry, SagaRow, SagaState, SagaStatus } from './state.js';
import { startTransitionSpans } from './telemetry.js';

/** A saga instance as the query functions return it. */
export interface SagaInstance<D extends SagaData = SagaData> {
  /** The id it was started with (e.g. the order's id). */
  id: string;
  /** The saga definition's name. */
  type: string;
  /** Where it is: `running`, `compensating`, or finished (`completed`, `compensated`, `failed`). */
  status: SagaStatus;
  /** Name of the step being executed or compensated (the last one, once finished). */
  step: string;
  /** Commands sent or actions run for that step in the current phase. */
  attempt: number;
  /** The saga data as last stored. */
  data: D;
  /** Bumped by every update: the optimistic concurrency check. */
  version: number;
  /** What it waits for: a `reply` (until `wakeAt`, its deadline, if any) or a `retry` (at `wakeAt`); null when done. */
  waiting: 'reply' | 'retry' | null;
  /** When the sweep acts on it: the reply deadline or the retry time; null if neither. */
  wakeAt: Date | null;
  /** The last failure: why compensation began, or the last failed compensation; null if nothing failed. */
  lastError: string | null;
  /** What happened to it, oldest first; the last 200 entries are kept. */
  history: SagaHistoryEntry[];
  /** When `start` inserted it. */
  createdAt: Date;
  /** When it was last saved. */
  updatedAt: Date;
}

/**
 * The orchestrator's verbs. Not a `Lifecycle`, it has nothing to start: it acts through
 * the consumer that runs `replyHandler` and the scheduler that runs `jobs`.
 */
export interface SagaOrchestrator {
  /**
   * Creates or upgrades the saga table in the orchestrator's database, with its own
   * bookkeeping table `<table>_migrations`; or add `sagaMigrations({ schema, table })` to
   * your knex migrations.
   */
  migrate(): Promise<void>;
  /** Starts a saga inside the caller's transaction; an existing id is returned unchanged. */
  start<D extends SagaData>(
    trx: Knex.Transaction,
    saga: SagaDefinition<D>,
    input: { id: string; data: D },
  ): Promise<SagaInstance<D>>;
  /** Consumer handler for `SagaReply` messages on `replyTopic`: advances the saga in the record's transaction. */
  replyHandler: SagaMessageHandler;
  /** Applies deadlines and due retries now; returns how many sagas it moved. `jobs` schedules it. */
  sweep(): Promise<number>;
  /**
   * The orchestrator's periodic jobs (the deadline/retry sweep, `sweepSchedule`), to run
   * once per cluster on a scheduler: `createScheduler(outbox, { jobs: orchestrator.jobs })`.
   */
  readonly jobs: readonly PeriodicJob[];
  /** Moves a `failed` saga back to compensating and retries the compensation that failed. */
  resume(sagaId: string): Promise<SagaInstance>;
  /** The saga with this id, or undefined if there is none. */
  get(sagaId: string): Promise<SagaInstance | undefined>;
  /**
   * A page of sagas in id order, of one `status` and/or `type` if given: at most `limit`
   * (default 100, 1 to 10 000, else `InvalidOptionError`), with ids after `afterId`.
   */
  list(options?: { status?: SagaStatus; type?: string; limit?: number; afterId?: string }): Promise<SagaInstance[]>;
  /** How many sagas are in each status; a status with none is absent. */
  countByStatus(): Promise<Partial<Record<SagaStatus, number>>>;
  /**
   * Adds a listener, called only after the transaction that caused the event committed;
   * returns the function that removes it. A listener that throws is logged once and ignored.
   */
  on<E extends keyof SagaEventMap>(event: E, listener: (payload: SagaEventMap[E]) => void): () => void;
}

/** What the I/O layer around the state machine needs, passed explicitly. */
interface Orchestration {
  o: ResolvedOrchestratorOptions;
  events: TypedEmitter<SagaEventMap>;
  deps: MachineDeps;
}

/**
 * Drives sagas forward and, when a step fails, compensates the completed steps in
 * reverse order. Saga state advances in the same transaction that consumes the reply
 * and emits the next command, so a duplicate reply can never advance it twice. The
 * decisions are the pure state machine's (run.ts); this is the I/O around it.
 */
export function createSagaOrchestrator(options: OrchestratorOptions): SagaOrchestrator {
  const o = resolveOrchestratorOptions(options);
  const { knex, outbox, sagasTable } = o;
  const c: Orchestration = {
    o,
    events: new TypedEmitter<SagaEventMap>('saga', o.logger),
    deps: {
      now: () => new Date(),
      retryDelayMs: (attempt) => backoffDelay(attempt, o.retryBackoff),
      maxCompensationAttempts: o.maxCompensationAttempts,
      replyTopic: o.replyTopic,
    },
  };
  const bound = (trx: Knex.Transaction, sagaId: string) => outbox.bind(trx, { correlationId: sagaId });
  const sweep = () =>
    knex.transaction(async (trx) => {
      const due = await run<SagaRow>(trx, lockDueSagas(sagasTable, o.sweepBatchSize));
      for (const row of due) await advanceSaga(c, trx, bound(trx, row.id), row, { kind: 'wake' });
      return due.length;
    });

  const orchestrator: SagaOrchestrator = {
    async migrate() {
      await runMigrations(
        knex,
        o.schema,
        `${o.table}_migrations`,
        sagaMigrations({ schema: o.schema, table: o.table }),
      );
    },

    async start(trx, saga, { id, data }) {
      if (!isKnexTransaction(trx))
        throw new InvalidOptionError(
          'start(trx, saga, input) needs the knex transaction of the change that starts the saga',
        );
      if (typeof id !== 'string' || id.length === 0 || id.length > 200)
        throw new InvalidOptionError(
          `saga id must be a non-empty string of at most 200 characters, got ${JSON.stringify(id)}`,
        );
      if (o.definitions.get(saga.name) !== (saga as unknown))
        throw new InvalidOptionError(`saga '${saga.name}' is not registered with this orchestrator`);
      const problem = sagaDataProblem(data);
      if (problem) throw new InvalidSagaDataError(`start(trx, '${saga.name}', { id: '${id}', data })`, problem);
      const [inserted] = await run<SagaRow>(trx, insertSaga(sagasTable, { id, type: saga.name }, JSON.stringify(data)));
      if (!inserted) {
        const [existing] = await run<SagaRow>(trx, selectSaga(sagasTable, id));
        return toInstance<typeof data>(o, existing!);
      }
      return toInstance<typeof data>(o, await advanceSaga(c, trx, bound(trx, id), inserted, { kind: 'start' }));
    },

    async replyHandler({ trx, message, outbox: send }) {
      const reply = parseSagaReply(message);
      const [row] = await run<SagaRow>(trx, selectSaga(sagasTable, reply.sagaId));
      if (!row) {
        const { sagaId, step, phase } = reply;
        return afterCommit(trx, c.events, c.o.instanceId, [
          { event: 'saga:replyIgnored', payload: { sagaId, step, phase, reason: 'no such saga' } },
        ]);
      }
      const { step, phase, outcome, retriable } = reply;
      await advanceSaga(c, trx, send, row, {
        kind: 'reply',
        step,
        phase,
        outcome,
        retriable,
        payload: message.payload,
      });
    },

    sweep,
    jobs: [sweepJob(o, sweep)],

    async resume(sagaId) {
      return knex.transaction(async (trx) => {
        const [row] = await run<SagaRow>(trx, selectSaga(sagasTable, sagaId));
        if (!row) throw new SagaStateError(sagaId, `no saga with id ${sagaId}`);
        return toInstance(o, await advanceSaga(c, trx, bound(trx, sagaId), row, { kind: 'resume' }));
      });
    },

    async get(sagaId) {
      const [row] = await run<SagaRow>(knex, selectSaga(sagasTable, sagaId));
      return row ? toInstance(o, row) : undefined;
    },

    async list({ status, type, limit = 100, afterId } = {}) {
      integer('limit', limit, 1, 10_000);
      const filter = { status: status ?? null, type: type ?? null, afterId: afterId ?? null, limit };
      return (await run<SagaRow>(knex, listSagas(sagasTable, filter))).map((row) => toInstance(o, row));
    },

    async countByStatus() {
      const counts: Partial<Record<SagaStatus, number>> = {};
      const rows = await run<{ status: SagaStatus; count: number }>(knex, countSagasByStatus(sagasTable));
      for (const { status, count } of rows) counts[status] = count;
      return counts;
    },

    on: (event, listener) => c.events.on(event, listener),
  };
  registerGaugeSource(orchestrator, { knex, sagasTable, logger: o.logger });
  return orchestrator;
}

/**
 * The deadline/retry sweep as a periodic job. The key names the saga table, the same
 * on every instance, so each scheduled run executes once per cluster through the run
 * coordinator however many instances schedule it (and two sweepers would still be
 * safe: due rows are locked with SKIP LOCKED).
 */
function sweepJob(o: ResolvedOrchestratorOptions, sweep: () => Promise<number>): PeriodicJob {
  return {
    name: `saga-sweep:${o.schema}.${o.table}`,
    key: `${o.schema}.${o.table}:saga-sweep`,
    schedule: o.sweepSchedule,
    run: sweep,
  };
}

/**
 * One saga, one event, inside `trx`: the state machine decides, local actions run in
 * savepoints of `trx`, commands go out through the bound outbox, and the row is saved
 * only if nobody advanced it since it was read. Returns the saga as saved.
 */
async function advanceSaga(
  c: Orchestration,
  trx: Knex.Transaction,
  send: BoundOutbox,
  row: SagaRow,
  event: SagaEvent,
): Promise<SagaRow> {
  const definition = c.o.definitions.get(row.type);
  if (!definition) throw new SagaStateError(row.id, `no saga named '${row.type}' is registered with this orchestrator`);
  const t = await drive(definition, row, event, c.deps, (action, state) => runLocal(trx, action, state));
  let saved = row;
  // A sweep runs on the scheduler: it continues the saga's trace from the row, not the job's context.
  const spans = startTransitionSpans(t.state, t.logged, event.kind === 'wake' ? row.traceContext : undefined);
  try {
    if (t.changed) {
      const enqueue = () => send.enqueue(t.commands);
      if (t.commands.length > 0) await (spans ? spans.sending(enqueue) : enqueue());
      const next: SagaRow = { ...row, ...t.state, traceContext: spans?.traceContext() ?? null };
      const [updated] = await run<{ version: number }>(
        trx,
        updateSaga(c.o.sagasTable, next, JSON.stringify(next.data)),
      );
      if (!updated) throw new SagaConcurrencyError(row.id);
      saved = { ...next, version: updated.version };
    }
  } catch (error) {
    spans?.end(error);
    throw error;
  }
  spans?.end();
  afterCommit(trx, c.events, c.o.instanceId, t.notices);
  return saved;
}

/** Runs a local action in a savepoint, so a throwing action leaves no partial writes. */
async function runLocal(trx: Knex.Transaction, action: LocalAction<SagaData>, state: SagaState): Promise<LocalOutcome> {
  try {
    const next = await trx.transaction(async (savepoint) => {
      const data = await action({ trx: savepoint, sagaId: state.id, data: state.data });
      // Checked inside the savepoint: data that cannot be stored fails the step, and undoes its writes.
      const problem = data === undefined ? undefined : sagaDataProblem(data);
      if (problem) throw new InvalidSagaDataError('the local action returned data', problem);
      return data;
    });
    return next === undefined ? { ok: true } : { ok: true, data: next };
  } catch (error) {
    return { ok: false, error: errorMessage(error) };
  }
}

/** Events are emitted once the transaction has committed, never for work that rolled back. */
function afterCommit(
  trx: Knex.Transaction,
  events: TypedEmitter<SagaEventMap>,
  instanceId: string,
  notices: SagaNotice[],
): void {
  if (notices.length === 0) return;
  trx.executionPromise.then(
    () => {
      for (const notice of notices) events.emit(notice.event, { ...notice.payload, instanceId } as never);
    },
    () => {},
  );
}

function toInstance<D extends SagaData>(o: ResolvedOrchestratorOptions, row: SagaRow): SagaInstance<D> {
  const { version, createdAt, updatedAt, traceContext: _, ...state } = row;
  return {
    ...state,
    step: o.definitions.get(row.type)?.steps[row.step]?.name ?? String(row.step),
    data: row.data as D,
    version,
    createdAt,
    updatedAt,
  };
}
