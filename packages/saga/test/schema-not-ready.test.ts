import { SchemaNotReadyError } from '@eventual/core';
import type { Message } from '@eventual/outbox';
import { createParticipant, createSagaOrchestrator, defineSaga, SAGA_HEADER } from '@eventual/saga';
import { describe, expect, it } from 'vitest';
import { serviceFixture } from './support.js';

const fixture = serviceFixture('saganotready');

const saga = defineSaga<{ n: number }>('not-ready')
  .step('one')
  .invokeParticipant({ topic: 'one.commands', type: 'One', payload: (d) => ({ n: d.n }) })
  .build();

describe('tables that were never migrated', () => {
  it('the saga store says so, and that orchestrator.migrate() or sagaMigrations() creates it', async () => {
    const { knex, outbox } = await fixture.service();
    const orchestrator = createSagaOrchestrator({ knex, outbox, replyTopic: 'replies', sagas: [saga] });
    const error = await orchestrator.get('s-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaNotReadyError);
    expect(error).toMatchObject({ component: 'saga store', retriable: false });
    expect((error as Error).message).toMatch(
      /^the saga store schema is not ready \(saga\.select: .*does not exist\); run orchestrator\.migrate\(\) or add sagaMigrations\(\)/,
    );
  });

  it('the participant log says so, and that participant.migrate(knex) or participantMigrations() creates it', async () => {
    const { knex, outbox } = await fixture.service();
    const participant = createParticipant({ name: 'p' });
    const command: Message = {
      id: '018f0000-0000-7000-8000-000000000001',
      topic: 'one.commands',
      key: 's-1',
      type: 'One',
      payload: {},
      headers: {
        [SAGA_HEADER.id]: 's-1',
        [SAGA_HEADER.type]: 'not-ready',
        [SAGA_HEADER.step]: '0',
        [SAGA_HEADER.phase]: 'forward',
        [SAGA_HEADER.replyTo]: 'replies',
      },
    };
    const handler = participant.handle(async () => ({ ok: true }));
    const error = await knex
      .transaction((trx) => handler({ trx, message: command, outbox: outbox.bind(trx) }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaNotReadyError);
    expect(error).toMatchObject({ component: 'saga participant log' });
    expect((error as Error).message).toMatch(/run participant\.migrate\(knex\) or add participantMigrations\(\)/);
  });
});
