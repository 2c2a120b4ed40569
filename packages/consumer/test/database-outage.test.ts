import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Consumer } from '@eventual/consumer';
import { createDatabase, type PostgresShutdownMode, startLocalPostgres } from '@eventual/devstack';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { createOutbox } from '@eventual/outbox';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { consumerFixture, inboxRows, uniqueName } from './support.js';

const fixture = consumerFixture('outage');
const brokers = fixture.services.kafkaBrokers;

/** An append-only ledger without a unique key: a message applied twice shows up twice. */
async function createLedger(knex: Knex): Promise<void> {
  await knex.schema.createTable('ledger', (t) => {
    t.bigIncrements('seq');
    t.text('key').notNullable();
    t.text('message_id').notNullable();
    t.integer('n').notNullable();
  });
}

async function ledger(knex: Knex): Promise<Array<{ key: string; message_id: string; n: number }>> {
  return knex('ledger').select('key', 'message_id', 'n').orderBy('seq');
}

/**
 * Every message applied exactly once, each key's messages in the order they were
 * produced, and none of it counted against a message: one attempt each in the inbox,
 * no retry, no dead letter.
 */
async function expectAppliedOnceInOrderWithoutAttempts(
  knex: Knex,
  consumer: Consumer,
  produced: Array<{ id: string; key: string; n: number }>,
) {
  const rows = await ledger(knex);
  expect(rows.map((r) => r.message_id).sort()).toEqual(produced.map((p) => p.id).sort());
  for (const key of new Set(produced.map((p) => p.key))) {
    expect(rows.filter((r) => r.key === key).map((r) => r.n)).toEqual(
      produced.filter((p) => p.key === key).map((p) => p.n),
    );
  }
  const inbox = await inboxRows(knex, consumer);
  expect(inbox.map((r) => [r.state, r.attempts])).toEqual(produced.map(() => ['processed', 1]));
  expect(consumer.counters).toMatchObject({ deadLettered: 0, retried: 0 });
}

function collectErrors(consumer: Consumer): Error[] {
  const errors: Error[] = [];
  consumer.on('consumer:error', (e) => errors.push(e.error));
  return errors;
}

describe('a database outage while a handler runs', () => {
  it.each([
    { batchSize: 1, wrapped: false },
    { batchSize: 10, wrapped: false },
    { batchSize: 1, wrapped: true },
  ])(
    'is not an attempt: a handler whose backend is terminated more often than maxAttempts applies once, in key order (batchSize $batchSize, error wrapped by the handler: $wrapped)',
    async ({ batchSize, wrapped }) => {
      const { knex, url, outbox } = await fixture.service();
      await createLedger(knex);
      const admin = fixture.connect(url, 2);
      const topic = randomTopic('terminated');
      await createTopics(brokers, [topic], 1);
      const maxAttempts = 3;
      const consumer = await fixture.consumer({
        outbox,
        name: uniqueName('ledger'),
        topics: [topic],
        maxAttempts,
        batchSize,
      });
      let terminations = 0;
      consumer.handle<{ n: number }>('Credit', async ({ trx, message }) => {
        await trx('ledger').insert({ key: message.key, message_id: message.id, n: message.payload.n });
        if (message.payload.n === 0 && terminations < maxAttempts + 2) {
          terminations += 1;
          const { rows } = await trx.raw('select pg_backend_pid() as pid');
          await admin.raw('select pg_terminate_backend(?)', [rows[0].pid]);
          try {
            await trx.raw('select 1'); // the backend is gone: this fails like any statement would
          } catch (error) {
            // A handler that hides the driver's error behind its own: the consumer still
            // sees that the record's connection is gone.
            if (wrapped) throw new Error('could not write the ledger');
            throw error;
          }
        }
      });
      const errors = collectErrors(consumer);
      await consumer.start();

      const messages = [0, 1, 2, 3, 4].map((n) => ({ key: n % 2 === 0 ? 'acct-1' : 'acct-2', type: 'Credit', n }));
      const ids = await fixture.produce(
        topic,
        messages.map((m) => ({ key: m.key, type: m.type, payload: { n: m.n } })),
      );

      await expect.poll(() => consumer.counters.processed, { timeout: 40_000 }).toBe(5);
      expect(terminations).toBe(maxAttempts + 2);
      await expectAppliedOnceInOrderWithoutAttempts(
        knex,
        consumer,
        messages.map((m, i) => ({ id: ids[i]!, key: m.key, n: m.n })),
      );
      // One event for the outage (a streak of failures), not one per failure.
      expect(errors.length).toBeGreaterThanOrEqual(1);
      expect(errors.length).toBeLessThan(terminations);
    },
  );

  it("counts a handler's own socket error (a call to another system) as its failure, and dead-letters after maxAttempts", async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('socket');
    await createTopics(brokers, [topic, `${topic}.dlq`], 1);
    const consumer = await fixture.consumer({ outbox, name: uniqueName('mailer'), topics: [topic], maxAttempts: 3 });
    let calls = 0;
    consumer.handle('SendEmail', async () => {
      calls += 1;
      // What fetch() throws when the mail API refuses connections: the record's own
      // database connection is fine, so this is not a database outage.
      throw new Error('fetch failed', {
        cause: Object.assign(new Error('connect ECONNREFUSED 10.0.0.9:443'), { code: 'ECONNREFUSED' }),
      });
    });
    await consumer.start();
    const [id] = await fixture.produce(topic, [{ key: 'u-1', type: 'SendEmail', payload: {} }]);
    await expect.poll(() => consumer.counters.deadLettered, { timeout: 20_000 }).toBe(1);
    expect(calls).toBe(3);
    expect(await inboxRows(knex, consumer)).toEqual([
      expect.objectContaining({ message_id: id, state: 'dead', attempts: 3 }),
    ]);
  });

  it('is not an attempt: PostgreSQL restarted fast, immediate and killed mid-handler applies each message once, in key order', async () => {
    // A server of its own: restarting the shared one would break the other test files.
    const server = await startLocalPostgres(join(await mkdtemp(join(tmpdir(), 'eventual-pg-restart-')), 'pg.log'));
    fixture.defer(() => server.stop()); // after the consumer and the pool that use it
    const url = await createDatabase(server.adminUrl, 'restart');
    const knex = fixture.connect(url);
    const outbox = createOutbox({ knex });
    await outbox.migrate({ shards: 4 });
    await createLedger(knex);
    const topic = randomTopic('restart');
    await createTopics(brokers, [topic], 1);
    const restarts: PostgresShutdownMode[] = ['fast', 'immediate', 'kill'];
    const maxAttempts = 2; // fewer than the restarts: counted outages would dead-letter the message
    const consumer = await fixture.consumer({ outbox, name: uniqueName('ledger'), topics: [topic], maxAttempts });
    let interrupted = 0;
    let running = 0;
    consumer.handle<{ n: number }>('Credit', async ({ trx, message }) => {
      await trx('ledger').insert({ key: message.key, message_id: message.id, n: message.payload.n });
      if (message.payload.n === 0 && interrupted < restarts.length) {
        running += 1;
        await trx.raw('select pg_sleep(60)'); // cut short by the restart
        throw new Error('pg_sleep returned although the server was restarted under it');
      }
    });
    const errors = collectErrors(consumer);
    await consumer.start();

    const messages = [0, 1, 2, 3].map((n) => ({ key: n % 2 === 0 ? 'acct-1' : 'acct-2', n }));
    const ids = await fixture.produce(
      topic,
      messages.map((m) => ({ key: m.key, type: 'Credit', payload: { n: m.n } })),
    );
    for (const mode of restarts) {
      await expect.poll(() => running, { timeout: 30_000 }).toBe(interrupted + 1);
      interrupted += 1;
      await server.restart(mode);
    }

    await expect.poll(() => consumer.counters.processed, { timeout: 60_000 }).toBe(4);
    await expectAppliedOnceInOrderWithoutAttempts(
      knex,
      consumer,
      messages.map((m, i) => ({ id: ids[i]!, key: m.key, n: m.n })),
    );
    expect(errors.length).toBeGreaterThanOrEqual(1);
  });
});
