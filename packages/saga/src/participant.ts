import {
  errorMessage,
  InvalidOptionError,
  identifier,
  nonEmptyString,
  optionsObject,
  qualified,
  runMigrations,
} from '@eventual/core';
import type { JsonValue, Message } from '@eventual/outbox';
import type { Knex } from 'knex';
import { CommandRejected } from './errors.js';
import { participantMigrations } from './migrations.js';
import { parseSagaCommand, type SagaMessageHandler, type SagaPhase, sagaReply } from './protocol.js';
import { lockStep, type ParticipantLogRow, recordStep, type StepKey, selectStep } from './sql/participant-log.js';
import { runParticipantStatement as run } from './sql/statement.js';

/** What a participant's command handler is given. */
export interface CommandContext<P = JsonValue> {
  /** The participant's transaction (a savepoint of the record's): its writes commit with the reply. */
  trx: Knex.Transaction;
  /** The command, its payload as `parse` returned it (when given). */
  command: Message<P>;
  /** The saga the command belongs to. */
  sagaId: string;
  /** `forward` to do the step, `compensate` to undo it. */
  phase: SagaPhase;
}

// biome-ignore lint/suspicious/noConfusingVoidType: a handler with nothing to report simply returns
type HandlerResult = object | undefined | void;
/** Returns the success reply payload (or nothing, for an empty reply), or throws `CommandRejected`. */
export type CommandHandler<P = JsonValue> = (context: CommandContext<P>) => Promise<HandlerResult> | HandlerResult;

/** Options of `participant.handle`. */
export interface CommandHandlerOptions<P> {
  /**
   * Validates and types the command payload before the handler runs. A throw is a
   * refusal, as `CommandRejected` is: a forward command gets a final failure reply
   * (the saga compensates), a compensation a failure the orchestrator retries.
   */
  parse?: (payload: JsonValue) => P;
}

/**
 * Options of `createParticipant`: `name` is 1 to 100 characters, `schema` and `table`
 * lower-case SQL identifiers (`InvalidOptionError` otherwise).
 */
export interface ParticipantOptions {
  /** Distinguishes participants that share one database. */
  name: string;
  /** Schema of the participant log. Default `eventual`. */
  schema?: string;
  /** The participant log table. Default `saga_participant_log`. */
  table?: string;
}

/** A saga participant; `createParticipant` makes one. */
export interface Participant {
  /**
   * Creates or upgrades the participant log in `knex`'s database, with its own
   * bookkeeping table `<table>_migrations`; or add `participantMigrations({ schema, table })`
   * to your knex migrations.
   */
  migrate(knex: Knex): Promise<void>;
  /** Wraps a command handler into a consumer handler that replies through the outbox, exactly once per saga step. */
  handle<P = JsonValue>(handler: CommandHandler<P>, options?: CommandHandlerOptions<P>): SagaMessageHandler;
}

/**
 * The participant side of a saga: runs a command handler and replies success or
 * failure through the outbox in the same transaction, idempotently per saga step.
 *
 * - The same command delivered again (a relay or Kafka duplicate) is dropped by the
 *   consumer's inbox; the same step *re-sent* by the orchestrator (a retry after a
 *   timeout) gets the stored reply again, without acting twice.
 * - A compensation for a step this participant never applied (the forward command
 *   failed, or has not arrived yet) is a no-op success, and leaves a tombstone so a
 *   forward command arriving after it is refused without effect: an undo can never
 *   be overtaken by the action it undoes.
 * - Commands of one step are handled one at a time (an advisory lock on the step,
 *   see sql/participant-log.ts), so a forward command and its compensation arriving
 *   together on different partitions cannot both miss each other.
 */
export function createParticipant(options: ParticipantOptions): Participant {
  optionsObject('createParticipant', options, ['name', 'schema', 'table'], "{ name: 'payments' }");
  const name = nonEmptyString('name', options.name, 100);
  const schema = identifier('schema', options.schema ?? 'eventual');
  const table = identifier('table', options.table ?? 'saga_participant_log');
  const log = qualified(schema, table);
  return {
    async migrate(knex) {
      await runMigrations(knex, schema, `${table}_migrations`, participantMigrations({ schema, table }));
    },
    handle(handler, { parse } = {}) {
      if (typeof handler !== 'function')
        throw new InvalidOptionError('participant.handle needs a function ({ trx, command, sagaId, phase }) => reply');
      if (parse !== undefined && typeof parse !== 'function')
        throw new InvalidOptionError('participant.handle(handler, { parse }) needs parse to be a function');
      return (context) => handleCommand(log, name, handler as CommandHandler<unknown>, parse, context);
    },
  };
}

/** One command, in the record's transaction: lock the step, consult its log, act at most once, reply. */
async function handleCommand(
  log: string,
  participant: string,
  handler: CommandHandler<unknown>,
  parse: ((payload: JsonValue) => unknown) | undefined,
  { trx, message, outbox }: Parameters<SagaMessageHandler>[0],
): Promise<void> {
  const { sagaId, step, phase } = parseSagaCommand(message);
  const key: StepKey = { participant, sagaId, step };
  const reply = (outcome: 'success' | 'failure', payload: unknown, retriable = false) =>
    outbox.enqueue(sagaReply(message, outcome, payload as JsonValue, { retriable }));
  const record = (outcome: ParticipantLogRow['outcome'], payload: unknown) =>
    run(trx, recordStep(log, key, { phase, outcome, reply: payload, commandId: message.id }));

  await run(trx, lockStep(key));
  const entries = await run<ParticipantLogRow>(trx, selectStep(log, key));
  const done = entries.find((entry) => entry.phase === phase);
  if (done) {
    // A re-sent command: answer as before, act never again.
    await reply(done.outcome === 'failure' ? 'failure' : 'success', done.reply);
    return;
  }
  const forward = entries.find((entry) => entry.phase === 'forward');
  if (phase === 'forward' && entries.some((entry) => entry.phase === 'compensate')) {
    const refusal = { reason: 'this step was already compensated; the late command is refused without effect' };
    await record('failure', refusal);
    await reply('failure', refusal);
    return;
  }
  if (phase === 'compensate' && forward?.outcome !== 'success') {
    const nothing = {
      reason: forward ? 'the step had failed: nothing to undo' : 'the step never ran here: nothing to undo',
    };
    await record('skipped', nothing);
    await reply('success', nothing);
    return;
  }
  try {
    const command = parse ? { ...message, payload: parsedPayload(parse, message) } : message;
    const result = await trx.transaction(async (savepoint) => handler({ trx: savepoint, command, sagaId, phase }));
    const payload = result ?? {};
    await record('success', payload);
    await reply('success', payload);
  } catch (error) {
    if (!(error instanceof CommandRejected)) throw error; // a real fault: the consumer retries it
    // Only a final forward refusal is remembered. A compensation is retried until it
    // succeeds, so its failure must not be replayed to the next attempt.
    const final = phase === 'forward' && !error.retriable;
    if (final) await record('failure', error.reply);
    await reply('failure', error.reply, !final);
  }
}

function parsedPayload(parse: (payload: JsonValue) => unknown, message: Message): unknown {
  try {
    return parse(message.payload);
  } catch (error) {
    throw new CommandRejected(
      `the payload of ${message.type} was rejected by its parse function: ${errorMessage(error)}`,
    );
  }
}
