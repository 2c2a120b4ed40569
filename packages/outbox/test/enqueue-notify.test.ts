import { waitUntil } from '@eventual/devstack';
import { randomTopic } from '@eventual/devstack/testing';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('enqueue_notify');
const CHANNEL = 'eventual_outbox';

interface PgListener {
  query(sql: string): Promise<unknown>;
  on(event: 'notification', listener: (n: { payload?: string }) => void): void;
}

/** Every NOTIFY payload on the outbox channel, in delivery order, on a connection of its own. */
async function listen(knex: Knex): Promise<string[]> {
  const conn = (await knex.client.acquireConnection()) as PgListener;
  fixture.defer(async () => knex.client.releaseConnection(conn));
  const payloads: string[] = [];
  conn.on('notification', (n) => payloads.push(n.payload ?? ''));
  await conn.query(`listen "${CHANNEL}"`);
  return payloads;
}

/** The payloads that arrived before a NOTIFY we send now (delivery follows commit order). */
async function notificationsSoFar(knex: Knex, payloads: string[]): Promise<string[]> {
  const sentinel = `sentinel-${Math.random()}`;
  await knex.raw('select pg_notify(?, ?)', [CHANNEL, sentinel]);
  await waitUntil('the sentinel NOTIFY', async () => (payloads.includes(sentinel) ? true : undefined), {
    timeoutMs: 10_000,
    intervalMs: 20,
  });
  return payloads.splice(0).filter((p) => p !== sentinel);
}

const shardsOf = async (knex: Knex, ids: string[]) =>
  (await knex('eventual.outbox').whereIn('id', ids).distinct('shard').orderBy('shard')).map(
    (r: { shard: number }) => r.shard,
  );

describe('enqueue inside the caller transaction', () => {
  it('sends one NOTIFY per committed transaction, after the commit, naming every shard it wrote', async () => {
    const { knex, outbox } = await fixture.database(8);
    const payloads = await listen(knex);
    const topic = randomTopic('notify');
    const ids = await knex.transaction(async (trx) => {
      const first = await outbox.enqueue(trx, { topic, key: 'a', type: 'T', payload: { n: 1 } });
      const more = await outbox.enqueue(trx, [
        { topic, key: 'b', type: 'T', payload: { n: 2 } },
        { topic, key: 'c', type: 'T', payload: { n: 3 } },
      ]);
      // Inside the transaction nothing has been announced yet.
      expect(await notificationsSoFar(knex, payloads)).toEqual([]);
      return [first.id, ...more.map((m) => m.id)];
    });
    await waitUntil('the NOTIFY', async () => (payloads.length > 0 ? true : undefined), { timeoutMs: 10_000 });
    const shards = await shardsOf(knex, ids);
    expect(await notificationsSoFar(knex, payloads)).toEqual([shards.join(',')]);
  });

  it('announces nothing for a rolled-back transaction, nor for one whose savepoint committed inside it', async () => {
    const { knex, outbox } = await fixture.database(8);
    const payloads = await listen(knex);
    const topic = randomTopic('rollback');
    await expect(
      knex.transaction(async (trx) => {
        await trx.transaction((savepoint) => outbox.enqueue(savepoint, { topic, key: 'a', type: 'T', payload: {} }));
        await outbox.enqueue(trx, { topic, key: 'b', type: 'T', payload: {} });
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    expect(await notificationsSoFar(knex, payloads)).toEqual([]);
    expect((await knex('eventual.outbox').count({ n: '*' }))[0]?.n).toBe('0');
  });

  it('refuses to write into a transaction that was already committed, and writes nothing', async () => {
    const { knex, outbox } = await fixture.database(8);
    const trx = await knex.transaction();
    const commit = trx.commit();
    await expect(outbox.enqueue(trx, { topic: randomTopic('late'), key: 'a', type: 'T', payload: {} })).rejects.toThrow(
      /already complete/,
    );
    await commit;
    expect((await knex('eventual.outbox').count({ n: '*' }))[0]?.n).toBe('0');
  });

  it('returns the payload as a consumer will read it, and stores exactly that', async () => {
    const { knex, outbox } = await fixture.database(8);
    const at = new Date('2026-01-02T03:04:05.000Z');
    const message = await knex.transaction((trx) =>
      outbox.enqueue(trx, { topic: randomTopic('copy'), key: 'a', type: 'T', payload: { at, list: [1, 'x'] } }),
    );
    expect(message.payload).toEqual({ at: at.toISOString(), list: [1, 'x'] });
    expect({ ...message }.payload).toEqual(message.payload);
    const row = await knex('eventual.outbox').where({ id: message.id }).first();
    expect(row.payload).toEqual(message.payload);
  });
});
