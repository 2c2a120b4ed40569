import {
  createOutbox,
  createRelay,
  createScheduler,
  ForeignTransactionError,
  IllegalTransitionError,
  InvalidMessageError,
  InvalidOptionError,
  MessageTooLargeError,
  outboxMigrations,
  ReservedHeaderError,
  SchemaNotReadyError,
  TransactionRequiredError,
} from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('badinput');
const count = async (knex: import('knex').Knex) => Number((await knex('eventual.outbox').count({ n: '*' }))[0]?.n);

describe('bad input gets a typed error that says what to change, and writes nothing', () => {
  it('rejects invalid outbox options and SQL identifiers', async () => {
    const { knex } = await fixture.database();
    expect(() => createOutbox({ knex, schema: 'public; drop table x' })).toThrow(InvalidOptionError);
    expect(() => createOutbox({ knex, schema: 'public; drop table x' })).toThrow(
      /schema must be a lower-case SQL identifier/,
    );
    expect(() => createOutbox({ knex, table: 'Outbox' })).toThrow(/table must be/);
    expect(() => createOutbox({ knex, maxMessageBytes: 0 })).toThrow(/maxMessageBytes must be an integer between/);
    expect(() => createOutbox({ knex, checkBack: { maxChecks: -1 } })).toThrow(/checkBack.maxChecks/);
    expect(() => createOutbox({ knex, checkBack: { defaultResolution: 'maybe' as 'commit' } })).toThrow(
      /'commit', 'rollback'/,
    );
    expect(() => createOutbox({ knex: {} as never })).toThrow(/knex must be a knex instance/);
    expect(() => createOutbox({ knex, tabel: 'x' } as never)).toThrow(/no option 'tabel'/);
    expect(() => outboxMigrations({ shards: 0 })).toThrow(/shards must be an integer between 1 and 4096/);
    const outbox = createOutbox({ knex });
    const publisher = { publish: async () => {}, close: async () => {} };
    expect(() => createRelay(outbox, { publisher, batchSize: 0 })).toThrow(/batchSize/);
    expect(() => createRelay(outbox, { publisher, lanes: 0 })).toThrow(
      /lanes must be an integer between 1 and 64, got 0/,
    );
    expect(() => createRelay(outbox, { publisher, backoff: { initialMs: 100, maxMs: 10 } })).toThrow(/backoff.maxMs/);
    expect(() => createRelay(outbox, { publisher, onPublished: 'drop' as 'mark' })).toThrow(
      /onPublished must be one of/,
    );
    expect(() => createRelay(outbox, { publisher: {} as never })).toThrow(/publisher must implement/);
    expect(() => createScheduler(outbox, { schedules: { cleanup: 'every minute' } })).toThrow(
      /schedules.cleanup must be a node-cron expression/,
    );
  });

  it('rejects messages that are not valid, and leaves the transaction to the caller', async () => {
    const { knex, outbox } = await fixture.database();
    const ok = { topic: 'orders', key: 'o-1', type: 'OrderCreated', payload: {} };
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const cases: Array<[unknown, RegExp]> = [
      [{ ...ok, topic: 'has space' }, /topic must be a legal Kafka topic name/],
      [{ ...ok, topic: '' }, /topic must be/],
      [{ ...ok, key: '' }, /key must be a non-empty string/],
      [{ ...ok, key: 42 }, /key must be/],
      [{ ...ok, type: '' }, /type must be/],
      [{ ...ok, payload: { price: Number.NaN } }, /payload.price is NaN/],
      [{ ...ok, payload: { total: 10n } }, /payload.total is a bigint/],
      [{ ...ok, payload: { when: undefined } }, /payload.when is undefined/],
      [{ ...ok, payload: { fn: () => 1 } }, /payload.fn is a function/],
      [{ ...ok, payload: { items: [1, Number.POSITIVE_INFINITY] } }, /payload.items\[1\] is Infinity/],
      [{ ...ok, payload: cycle }, /payload.self refers back to itself/],
      [{ ...ok, payload: new Map() }, /payload is a Map object/],
      [{ ...ok, headers: { tenant: 7 } }, /header 'tenant' must be a string/],
    ];
    for (const [message, reason] of cases) {
      const attempt = knex.transaction((trx) => outbox.enqueue(trx, message as typeof ok));
      await expect(attempt, String(reason)).rejects.toThrow(InvalidMessageError);
      await expect(knex.transaction((trx) => outbox.enqueue(trx, message as typeof ok))).rejects.toThrow(reason);
    }
    // One bad message in a batch: none of the batch is written, and the error says which.
    await expect(knex.transaction((trx) => outbox.enqueue(trx, [ok, { ...ok, key: '' }]))).rejects.toThrow(
      /messages\[1\]: key/,
    );
    expect(await count(knex)).toBe(0);
  });

  it('refuses headers the outbox writes itself instead of silently replacing them, and writes nothing', async () => {
    const { knex, outbox } = await fixture.database();
    const ok = { topic: 'orders', key: 'o-1', type: 'OrderCreated', payload: {} };
    const cases: Array<[Record<string, string>, Record<string, unknown>, RegExp]> = [
      [
        { 'message-id': 'my-own-id' },
        {},
        /header 'message-id' is written by the outbox itself \(the id it assigns, a UUID v7\); remove it from headers/,
      ],
      [{ 'Message-Id': 'my-own-id' }, {}, /header 'Message-Id' is written by the outbox itself/],
      [{ 'message-type': 'Other' }, {}, /header 'message-type' is written by the outbox itself \(from `type`\)/],
      [{ 'MESSAGE-TYPE': 'Other' }, {}, /header 'MESSAGE-TYPE' is written/],
      [
        { 'Correlation-Id': 'c-1' },
        {},
        /'Correlation-Id' differs from the standard 'correlation-id' only in letter case.*correlationId field/,
      ],
      [
        { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
        {},
        /header 'traceparent' is written by the outbox itself \(from the message's OpenTelemetry create span/,
      ],
      [{ Traceparent: '00-x' }, {}, /header 'Traceparent' is written by the outbox itself/],
      [{ tracestate: 'vendor=1' }, {}, /header 'tracestate' is written by the outbox itself/],
      [
        { 'correlation-id': 'c-1' },
        { correlationId: 'c-2' },
        /correlationId is 'c-2' but header 'correlation-id' is 'c-1'/,
      ],
      [{ 'causation-id': 'x' }, { causationId: 'y' }, /causationId is 'y' but header 'causation-id' is 'x'/],
      [{ 'causation-id': '' }, {}, /header 'causation-id' must be a non-empty string of at most 200 characters/],
    ];
    for (const [headers, fields, reason] of cases) {
      const message = { ...ok, ...fields, headers };
      const error = await knex.transaction((trx) => outbox.enqueue(trx, message)).catch((e: unknown) => e);
      expect(error, String(reason)).toBeInstanceOf(InvalidMessageError);
      expect((error as Error).message).toMatch(reason);
      if (!reason.source.includes('must be a non-empty'))
        expect(error).toMatchObject({ name: 'ReservedHeaderError', code: 'reserved_header', retriable: false });
    }
    // The same rule for prepared messages, bound outboxes and batches (none of the batch is written).
    const own = { ...ok, headers: { 'message-id': 'my-own-id' } };
    outbox.registerChecker({ topic: 'orders' }, async () => 'unknown' as const);
    await expect(outbox.prepare(own)).rejects.toThrow(ReservedHeaderError);
    await expect(knex.transaction((trx) => outbox.bind(trx).enqueue(own))).rejects.toThrow(ReservedHeaderError);
    // A bound outbox fills correlation-id in from the incoming message: a different header contradicts it.
    await expect(
      knex.transaction((trx) =>
        outbox.bind(trx, { correlationId: 'incoming' }).enqueue({ ...ok, headers: { 'correlation-id': 'mine' } }),
      ),
    ).rejects.toThrow(/correlationId is 'incoming' but header 'correlation-id' is 'mine'/);
    await expect(knex.transaction((trx) => outbox.enqueue(trx, [ok, own]))).rejects.toThrow(
      /^messages\[1\]: header 'message-id' is written by the outbox itself/,
    );
    expect(await count(knex)).toBe(0);

    // What may pass through: the exact standard names, agreeing with the fields.
    const passed = await knex.transaction((trx) =>
      outbox.enqueue(trx, {
        ...ok,
        correlationId: 'c-1',
        headers: { 'correlation-id': 'c-1', 'causation-id': 'cause-1', tenant: 'acme' },
      }),
    );
    expect(passed.headers).toMatchObject({
      'message-id': passed.id,
      'message-type': 'OrderCreated',
      'correlation-id': 'c-1',
      'causation-id': 'cause-1',
      tenant: 'acme',
    });
    // No tracer provider is registered in this file: no trace headers are made up.
    expect(passed.headers).not.toHaveProperty('traceparent');
    expect(await count(knex)).toBe(1);
  });

  it('rejects an oversized message before it is written', async () => {
    const { knex } = await fixture.database();
    const outbox = createOutbox({ knex, maxMessageBytes: 4_096 });
    const huge = { topic: 'orders', key: 'o-1', type: 'OrderCreated', payload: { blob: 'é'.repeat(3_000) } };
    const error = await knex.transaction((trx) => outbox.enqueue(trx, huge)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MessageTooLargeError);
    expect(error).toMatchObject({ code: 'message_too_large', limit: 4_096, retriable: false });
    expect((error as MessageTooLargeError).bytes).toBeGreaterThan(6_000); // UTF-8 bytes, not characters
    expect(await count(knex)).toBe(0);
  });

  it('refuses to enqueue outside a transaction, since the message could then commit without the change', async () => {
    const { knex, outbox } = await fixture.database();
    const message = { topic: 'orders', key: 'o-1', type: 'OrderCreated', payload: {} };
    await expect(outbox.enqueue(knex as never, message)).rejects.toThrow(TransactionRequiredError);
    await expect(outbox.enqueue(undefined as never, message)).rejects.toThrow(
      /needs the knex transaction of your business change/,
    );
    expect(await count(knex)).toBe(0);
  });

  it("refuses a transaction of another database, which would put the message in that database's outbox", async () => {
    const ours = await fixture.database();
    const theirs = await fixture.database();
    const message = { topic: 'orders', key: 'o-1', type: 'OrderCreated', payload: {} };
    await expect(theirs.knex.transaction((trx) => ours.outbox.enqueue(trx, message))).rejects.toThrow(
      ForeignTransactionError,
    );
    await expect(theirs.knex.transaction((trx) => ours.outbox.bind(trx).enqueue(message))).rejects.toThrow(
      /got a transaction of database .*, but this outbox lives in/,
    );
    // A second knex instance on the outbox's own database is fine: same host, port and database.
    const sameDatabase = fixture.connect(ours.url);
    await sameDatabase.transaction((trx) => ours.outbox.enqueue(trx, message));
    expect(await count(ours.knex)).toBe(1);
    expect(await count(theirs.knex)).toBe(0);
  });

  it('says the schema is missing instead of failing with a raw driver error', async () => {
    const url = await fixture.services.createDatabase('nomigrate');
    const outbox = createOutbox({ knex: fixture.connect(url) });
    await expect(outbox.stats()).rejects.toThrow(SchemaNotReadyError);
    await expect(outbox.stats()).rejects.toThrow(/run outbox.migrate\(\)/);
  });

  it('has the database itself reject state transitions outside the state machine', async () => {
    const { knex, outbox } = await fixture.database();
    const [message] = await knex.transaction((trx) =>
      outbox.enqueue(trx, [{ topic: 'orders', key: 'o-1', type: 'T', payload: {} }]),
    );
    const set = (state: string) => knex.raw(`update eventual.outbox set state = ? where id = ?`, [state, message!.id]);
    await expect(set('cancelled')).rejects.toThrow(/cannot go from pending to cancelled/);
    await expect(set('prepared')).rejects.toThrow(/cannot go from pending to prepared/);
    await set('published');
    await expect(set('pending')).rejects.toThrow(/cannot go from published to pending/);
    await expect(set('dead')).rejects.toThrow(/cannot go from published to dead/);
    await expect(
      knex.raw(
        `insert into eventual.outbox (id, topic, key, type, payload, headers, shard, state) values (gen_random_uuid(), 't', 'k', 'T', '{}', '{}', 0, 'published')`,
      ),
    ).rejects.toThrow(/only prepared or pending/);
    expect(IllegalTransitionError).toBeDefined();
  });

  it("migrates through the user's own knex migrator, under another schema and table name", async () => {
    const url = await fixture.services.createDatabase('ownmigrator');
    const knex = fixture.connect(url);
    await knex.migrate.latest({
      migrationSource: outboxMigrations({ schema: 'billing', table: 'messages', shards: 4 }),
    });
    await knex.migrate.latest({
      migrationSource: outboxMigrations({ schema: 'billing', table: 'messages', shards: 4 }),
    }); // idempotent
    const outbox = createOutbox({ knex, schema: 'billing', table: 'messages' });
    await knex.transaction((trx) => outbox.enqueue(trx, { topic: 't', key: 'k', type: 'T', payload: { ok: true } }));
    expect((await outbox.stats()).pending).toBe(1);
    const { rows } = await knex.raw('select shard from billing.messages');
    expect(rows[0].shard).toBeLessThan(4);
  });
});
