import type { JsonValue } from '@eventual/outbox';
import type { CommandSpec, LocalAction, ReplyFold, SagaData, SagaDefinition, StepDefinition } from './definition.js';
import { sagaDataProblem } from './definition.js';
import { InvalidReplyError, InvalidSagaDataError, SagaStateError } from './errors.js';
import { commandHeaders, replyReason, type SagaPhase } from './protocol.js';
import type { LocalOutcome, MachineDeps, SagaEvent, SagaHistoryEntry, SagaState, Transition } from './state.js';

export type { LocalOutcome, MachineDeps, SagaEvent, Transition } from './state.js';

/**
 * The saga state machine, as a pure function: `advance(definition, state, event, deps)`
 * returns the next state, the commands to send and the events to emit after commit.
 * No database, no broker, no clock of its own. The orchestrator is the thin layer
 * around it: read the row, advance, enqueue the commands through the bound outbox,
 * save with the optimistic version, emit after commit.
 *
 * Local steps (and local compensations) must run in the orchestrator's transaction,
 * so the machine does not run them: it pauses with `runLocal`, and the caller runs the
 * action and advances again with `{ kind: 'local', outcome }`; `drive` does that loop.
 * The vocabulary (state, events, transition, dependencies) is in state.ts.
 */

const MAX_HISTORY = 200;

/** One transition in the making: a copy of the state, changed in place, and what it produced. */
interface Draft {
  definition: SagaDefinition<SagaData>;
  deps: MachineDeps;
  s: SagaState;
  out: Transition;
}

export function advance(
  definition: SagaDefinition<SagaData>,
  state: SagaState,
  event: SagaEvent,
  deps: MachineDeps,
): Transition {
  const s: SagaState = { ...state };
  const d: Draft = { definition, deps, s, out: { state: s, commands: [], notices: [], logged: [], changed: true } };
  switch (event.kind) {
    case 'start':
      d.out.notices.push({ event: 'saga:started', payload: { sagaId: s.id, type: s.type } });
      forward(d);
      break;
    case 'reply': {
      const ignored = whyIgnored(s, event);
      if (ignored !== undefined) {
        const { step, phase } = event;
        d.out.notices.push({ event: 'saga:replyIgnored', payload: { sagaId: s.id, step, phase, reason: ignored } });
        return { ...d.out, state, changed: false };
      }
      onReply(d, event);
      break;
    }
    case 'wake':
      if (s.waiting === null || (s.status !== 'running' && s.status !== 'compensating'))
        return { ...d.out, state, changed: false };
      onWake(d);
      break;
    case 'resume':
      if (s.status !== 'failed')
        throw new SagaStateError(s.id, `saga ${s.id} is ${s.status}; only a failed saga can be resumed`);
      s.status = 'compensating';
      s.attempt = 0;
      log(d, 'compensate', 'resumed');
      compensate(d);
      break;
    case 'local':
      onLocal(d, event.outcome);
      break;
  }
  return d.out;
}

/** Advances, running every local action the machine pauses on with `runLocal`, until it settles. */
export async function drive(
  definition: SagaDefinition<SagaData>,
  state: SagaState,
  event: SagaEvent,
  deps: MachineDeps,
  runLocal: (action: LocalAction<SagaData>, state: SagaState) => Promise<LocalOutcome>,
): Promise<Omit<Transition, 'runLocal'>> {
  let t = advance(definition, state, event, deps);
  const commands = [...t.commands];
  const notices = [...t.notices];
  const logged = [...t.logged];
  while (t.runLocal) {
    const outcome = await runLocal(t.runLocal.action, t.state);
    t = advance(definition, t.state, { kind: 'local', outcome }, deps);
    commands.push(...t.commands);
    notices.push(...t.notices);
    logged.push(...t.logged);
  }
  return { state: t.state, commands, notices, logged, changed: t.changed };
}

/** Why a reply does not fit what the saga waits for (a duplicate, a late or reordered one), if it does not. */
function whyIgnored(s: SagaState, reply: { step: number; phase: SagaPhase }): string | undefined {
  const expected = s.status === 'running' ? 'forward' : s.status === 'compensating' ? 'compensate' : null;
  if (expected === null) return `saga is ${s.status}`;
  if (reply.phase !== expected || reply.step !== s.step)
    return `saga waits for step ${s.step} (${expected}), reply is for step ${reply.step} (${reply.phase})`;
  if (s.waiting === null) return 'saga waits for nothing';
  return undefined;
}

const stepOf = (d: Draft): StepDefinition<SagaData> => d.definition.steps[d.s.step]!;

function log(d: Draft, phase: SagaPhase, event: SagaHistoryEntry['event'], detail?: string): void {
  const entry: SagaHistoryEntry = {
    at: d.deps.now().toISOString(),
    step: stepOf(d).name,
    phase,
    event,
    attempt: d.s.attempt,
  };
  if (detail !== undefined) entry.detail = detail.slice(0, 500);
  d.s.history = [...d.s.history, entry].slice(-MAX_HISTORY);
  d.out.logged.push(entry);
}

function sendCommand(d: Draft, command: CommandSpec<SagaData>, phase: SagaPhase): void {
  const { s, deps } = d;
  s.attempt += 1;
  const { data } = s;
  d.out.commands.push({
    topic: command.topic,
    key: command.key?.(data, s.id) ?? s.id,
    type: command.type,
    payload: command.payload(data, s.id),
    correlationId: s.id,
    headers: commandHeaders({
      sagaId: s.id,
      sagaType: s.type,
      step: s.step,
      phase,
      attempt: s.attempt,
      replyTo: deps.replyTopic,
    }),
  });
  log(d, phase, 'sent');
  s.waiting = 'reply';
  const deadline = stepOf(d).deadline;
  s.wakeAt = deadline ? new Date(deps.now().getTime() + deadline.afterMs) : null;
}

function pauseForLocal(d: Draft, action: LocalAction<SagaData>, phase: SagaPhase): void {
  d.s.attempt += 1;
  d.out.runLocal = { action, phase, step: d.s.step };
}

/** Executes forward from the current step until a command is in flight, a local action is due, or the saga completed. */
function forward(d: Draft) {
  const { s, definition } = d;
  if (s.step < definition.steps.length) {
    const step = stepOf(d);
    if (step.command) return sendCommand(d, step.command, 'forward');
    return pauseForLocal(d, step.local!, 'forward');
  }
  s.step = definition.steps.length - 1;
  finish(d, 'completed');
  d.out.notices.push({ event: 'saga:completed', payload: { sagaId: s.id, type: s.type } });
}

function startCompensation(d: Draft, fromStep: number, reason: string) {
  const { s, definition } = d;
  const failedStep = definition.steps[Math.min(s.step, definition.steps.length - 1)]!.name;
  s.status = 'compensating';
  s.step = fromStep;
  s.attempt = 0;
  s.lastError = reason;
  d.out.notices.push({
    event: 'saga:compensating',
    payload: { sagaId: s.id, type: s.type, fromStep: failedStep, reason },
  });
  compensate(d);
}

/** Compensates from the current step down to step 0, skipping steps without compensation. */
function compensate(d: Draft) {
  const { s } = d;
  while (s.step >= 0 && !stepOf(d).compensation) s.step -= 1;
  if (s.step >= 0) {
    const compensation = stepOf(d).compensation!;
    if (compensation.command) return sendCommand(d, compensation.command, 'compensate');
    return pauseForLocal(d, compensation.local!, 'compensate');
  }
  s.step = 0;
  finish(d, 'compensated');
  d.out.notices.push({ event: 'saga:compensated', payload: { sagaId: s.id, type: s.type } });
}

/** Compensations are retried with backoff until they succeed, or `failed` after the limit. */
function compensationFailed(d: Draft, error: string) {
  const { s } = d;
  const step = stepOf(d).name;
  log(d, 'compensate', 'failed', error);
  s.lastError = `compensation of step '${step}' failed (attempt ${s.attempt}): ${error}`;
  if (s.attempt < d.deps.maxCompensationAttempts) return scheduleRetry(d);
  finish(d, 'failed');
  d.out.notices.push({ event: 'saga:failed', payload: { sagaId: s.id, type: s.type, step, error: s.lastError } });
}

function scheduleRetry(d: Draft): void {
  d.s.waiting = 'retry';
  d.s.wakeAt = new Date(d.deps.now().getTime() + d.deps.retryDelayMs(d.s.attempt));
}

function finish(d: Draft, status: 'completed' | 'compensated' | 'failed'): void {
  d.s.status = status;
  d.s.waiting = null;
  d.s.wakeAt = null;
}

function onLocal(d: Draft, outcome: LocalOutcome) {
  const { s } = d;
  const step = stepOf(d);
  if (s.status === 'running') {
    if (!outcome.ok) {
      log(d, 'forward', 'failed', outcome.error);
      return startCompensation(d, s.step - 1, `step '${step.name}' failed: ${outcome.error}`);
    }
    if (outcome.data !== undefined) s.data = outcome.data;
    log(d, 'forward', 'ran');
    s.step += 1;
    s.attempt = 0;
    return forward(d);
  }
  if (!outcome.ok) return compensationFailed(d, outcome.error);
  if (outcome.data !== undefined) s.data = outcome.data;
  log(d, 'compensate', 'ran');
  s.step -= 1;
  s.attempt = 0;
  compensate(d);
}

function onReply(d: Draft, reply: Extract<SagaEvent, { kind: 'reply' }>) {
  const { s } = d;
  const step = stepOf(d);
  if (s.status === 'running') {
    if (reply.outcome === 'success') {
      foldReply(d, step.onReply, reply);
      log(d, 'forward', 'succeeded');
      s.step += 1;
      s.attempt = 0;
      return forward(d);
    }
    foldReply(d, step.onFailure, reply);
    const reason = replyReason(reply.payload);
    log(d, 'forward', 'failed', reason);
    if (reply.retriable && s.attempt < step.retry.maxAttempts) return scheduleRetry(d);
    // A failure reply means the participant applied nothing: compensate the steps before it.
    return startCompensation(d, s.step - 1, `step '${step.name}' failed: ${reason}`);
  }
  if (reply.outcome === 'success') {
    log(d, 'compensate', 'succeeded');
    s.step -= 1;
    s.attempt = 0;
    return compensate(d);
  }
  compensationFailed(d, replyReason(reply.payload));
}

/** Folds a reply into the data, through the step's `parse` if it has one; the result must be storable. */
function foldReply(d: Draft, how: ReplyFold<SagaData> | undefined, reply: { outcome: string; payload: JsonValue }) {
  if (!how) return;
  const step = stepOf(d).name;
  let parsed: unknown = reply.payload;
  if (how.parse) {
    try {
      parsed = how.parse(reply.payload);
    } catch (error) {
      throw new InvalidReplyError(d.s.type, step, reply.outcome, error);
    }
  }
  const data = how.fold(d.s.data, parsed);
  const problem = sagaDataProblem(data);
  const method = reply.outcome === 'success' ? 'onReply' : 'onFailure';
  if (problem) throw new InvalidSagaDataError(`saga ${d.s.type}, step '${step}': ${method} returned data`, problem);
  d.s.data = data;
}

function onWake(d: Draft) {
  const { s } = d;
  const step = stepOf(d);
  const phase: SagaPhase = s.status === 'running' ? 'forward' : 'compensate';
  if (s.waiting === 'reply') log(d, phase, 'timed-out');
  if (phase === 'compensate') {
    if (s.waiting === 'reply' && s.attempt >= d.deps.maxCompensationAttempts)
      return compensationFailed(d, 'no reply before the deadline');
    return compensate(d);
  }
  if (s.waiting === 'retry' || (step.deadline?.onTimeout === 'retry' && s.attempt < step.retry.maxAttempts))
    return sendCommand(d, step.command!, 'forward');
  // No reply: the participant may or may not have acted, so this step is compensated
  // too (a participant built with createParticipant treats an undo of nothing as a no-op).
  startCompensation(d, s.step, `step '${step.name}' got no reply within ${step.deadline?.afterMs} ms`);
}
