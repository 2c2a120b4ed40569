import { createTopics, randomTopic } from '@eventual/devstack/testing';
import {
  type CommandHandler,
  CommandRejected,
  createParticipant,
  createSagaOrchestrator,
  SAGA_REPLY_TYPE,
  type SagaOrchestrator,
} from '@eventual/saga';
import type { Knex } from 'knex';
import { type Letter, type SagaTopics, threeStepSaga } from './fixtures/three-step-saga.js';
import { serviceFixture, uniqueName } from './support.js';

export type Plan = {
  /** Participants that answer the forward command with a (non-retriable) failure. */
  reject?: Letter[];
  /** Participants whose compensation throws a rejection every time until `fixed`. */
  undoFails?: Letter[];
};

/**
 * An orchestrator service and three participant services (a, b, c), each with its own
 * database, outbox, relay and consumer, talking only through Kafka. Participants
 * record every effect in an `effects` table: (saga_id, letter, action, at).
 */
export function sagaWorld(prefix: string) {
  const fixture = serviceFixture(prefix);
  const plans = new Map<string, Plan>();
  const fixed = new Set<string>();

  async function participant(letter: Letter, topics: SagaTopics, options: { start?: boolean } = {}) {
    const { knex, outbox } = await fixture.service();
    await knex.schema.createTable('effects', (t) => {
      t.bigIncrements('seq');
      t.text('saga_id').notNullable();
      t.text('action').notNullable();
      t.specificType('at', 'timestamptz not null default clock_timestamp()');
    });
    const participantSide = createParticipant({ name: `participant-${letter}` });
    await participantSide.migrate(knex);
    const record = (trx: Knex.Transaction, sagaId: string, action: string) =>
      trx('effects').insert({ saga_id: sagaId, action });
    const forward: CommandHandler = async ({ trx, sagaId }) => {
      await record(trx, sagaId, `do-${letter}`);
      if (plans.get(sagaId)?.reject?.includes(letter))
        throw new CommandRejected(`${letter} says no`, { reply: { letter } });
      return { letter };
    };
    const undo: CommandHandler = async ({ trx, sagaId }) => {
      if (plans.get(sagaId)?.undoFails?.includes(letter) && !fixed.has(`${sagaId}:${letter}`)) {
        throw new CommandRejected(`${letter} cannot undo yet`);
      }
      await record(trx, sagaId, `undo-${letter}`);
      return { undone: letter };
    };
    const consumer = await fixture.consumer({
      outbox,
      name: uniqueName(`participant-${letter}`),
      topics: [topics[letter]],
    });
    consumer.handle(`Do${letter.toUpperCase()}`, participantSide.handle(forward));
    consumer.handle(`Undo${letter.toUpperCase()}`, participantSide.handle(undo));
    const relay = fixture.relay(outbox);
    const start = async () => {
      await relay.start();
      await consumer.start();
    };
    if (options.start !== false) await start();
    return {
      knex,
      start,
      effects: async (sagaId: string) =>
        (await knex('effects').where({ saga_id: sagaId }).orderBy('seq')).map((r: { action: string; at: Date }) => r),
    };
  }

  return {
    fixture,
    plans,
    fix: (sagaId: string, letter: Letter) => fixed.add(`${sagaId}:${letter}`),
    async topics(): Promise<SagaTopics> {
      const topics = {
        a: randomTopic('cmd-a'),
        b: randomTopic('cmd-b'),
        c: randomTopic('cmd-c'),
        replies: randomTopic('replies'),
      };
      await createTopics(fixture.services.kafkaBrokers, Object.values(topics), 3);
      return topics;
    },
    participant,
    /** The orchestrator service: sagas, outbox, relay, and a consumer of the reply topic. */
    async orchestrator(topics: SagaTopics, extraSagas: ReturnType<typeof threeStepSaga>[] = []) {
      const { url, knex, outbox } = await fixture.service();
      const saga = threeStepSaga(topics);
      const orchestrator: SagaOrchestrator = createSagaOrchestrator({
        knex,
        outbox,
        replyTopic: topics.replies,
        sagas: [saga, ...extraSagas],
        maxCompensationAttempts: 3,
        retryBackoff: { initialMs: 50, maxMs: 100 },
        instanceId: 'orchestrator-1',
      });
      await orchestrator.migrate();
      const consumer = await fixture.consumer({ outbox, name: uniqueName('orchestrator'), topics: [topics.replies] });
      consumer.handle(SAGA_REPLY_TYPE, orchestrator.replyHandler);
      await fixture.relay(outbox).start();
      await consumer.start();
      return { url, knex, outbox, orchestrator, saga, consumer };
    },
  };
}
