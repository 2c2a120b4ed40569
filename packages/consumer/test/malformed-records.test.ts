import { randomUUID } from 'node:crypto';
import { DLQ_HEADER } from '@eventual/consumer';
import { createTopics, randomTopic, readTopics } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture, inboxRows, uniqueName } from './support.js';

const fixture = consumerFixture('malformed');
const brokers = fixture.services.kafkaBrokers;

describe('malformed records', () => {
  it('dead-letters each malformed record with its reason, once, and goes on with the next record', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('orders');
    const dlq = `${topic}.dlq`;
    await createTopics(brokers, [topic, dlq], 1);
    // Grace 0: an unknown type (offset 3) is decided at once, as malformed records are.
    const consumer = await fixture.consumer({
      outbox,
      name: uniqueName('orders'),
      topics: [topic],
      unknownTypeGraceMs: 0,
    });
    const handled: string[] = [];
    consumer.handle(
      'OrderPlaced',
      async ({ trx, message }) => {
        handled.push(message.id);
        await apply(trx, message);
      },
      {
        parse(payload) {
          const total = (payload as { total?: unknown } | null)?.total;
          if (typeof total !== 'number') throw new Error(`total must be a number, got ${JSON.stringify(total)}`);
          return { total };
        },
      },
    );
    fixture.relay(outbox).start();
    const reader = await readTopics(brokers, [dlq]);
    fixture.defer(() => reader.stop());
    await consumer.start();

    const id = () => randomUUID();
    const headers = (messageId: string, type = 'OrderPlaced') => ({ [HEADER.id]: messageId, [HEADER.type]: type });
    const [notJson, noType, unknownType, badSchema, good] = [id(), id(), id(), id(), id()];
    await fixture.produceRaw(topic, [
      { key: 'o-1', value: '{"total": 5', headers: headers(notJson) }, // offset 0
      { key: 'o-1', value: '{"total": 5}', headers: { [HEADER.type]: 'OrderPlaced' } }, // offset 1: no message id
      { key: 'o-1', value: '{"total": 5}', headers: { [HEADER.id]: noType } }, // offset 2
      { key: 'o-1', value: '{"total": 5}', headers: headers(unknownType, 'OrderTeleported') }, // offset 3
      { key: 'o-1', value: '{"total": "lots"}', headers: headers(badSchema) }, // offset 4
      { key: 'o-1', value: '{"total": 5}', headers: headers(good) }, // offset 5
    ]);

    await expect.poll(() => consumer.counters.processed, { timeout: 20_000 }).toBe(1);
    expect(handled).toEqual([good]);
    expect(await appliedTimes(knex)).toEqual({ [good]: 1 });

    const records = await reader.waitForCount(5);
    const byOffset = Object.fromEntries(records.map((r) => [r.headers[DLQ_HEADER.originalOffset], r] as const));
    expect(Object.keys(byOffset).sort()).toEqual(['0', '1', '2', '3', '4']);
    const reason = (offset: string) => [
      byOffset[offset]!.headers[DLQ_HEADER.reason],
      byOffset[offset]!.headers[DLQ_HEADER.originalMessageId],
    ];
    expect(reason('0')).toEqual(['malformed', notJson]);
    expect(reason('1')).toEqual(['malformed', `${topic}:0:1`]);
    expect(reason('2')).toEqual(['malformed', noType]);
    expect(reason('3')).toEqual(['unknown-type', unknownType]);
    expect(reason('4')).toEqual(['malformed', badSchema]);
    expect(byOffset['0']!.headers[DLQ_HEADER.error]).toMatch(/^the record value is not JSON: /);
    expect(byOffset['1']!.headers[DLQ_HEADER.error]).toBe(
      "the record has no 'message-id' header (eventual producers always set it)",
    );
    expect(byOffset['2']!.headers[DLQ_HEADER.error]).toBe(
      "the record has no 'message-type' header, so no handler can be chosen",
    );
    expect(byOffset['3']!.headers[DLQ_HEADER.error]).toMatch(
      /^no handler is registered for message type 'OrderTeleported'/,
    );
    expect(byOffset['4']!.headers[DLQ_HEADER.error]).toBe(
      'the payload of OrderPlaced was rejected by its parse function: total must be a number, got "lots"',
    );
    // The original value travels as it can: raw text when it is not JSON, JSON otherwise.
    expect(byOffset['0']!.headers[DLQ_HEADER.valueEncoding]).toBe('text');
    expect(JSON.parse(byOffset['0']!.value!)).toBe('{"total": 5');
    expect(JSON.parse(byOffset['4']!.value!)).toEqual({ total: 'lots' });
    expect(records.every((r) => r.headers[DLQ_HEADER.originalTopic] === topic && r.key === 'o-1')).toBe(true);

    const rows = await inboxRows(knex, consumer);
    expect(rows.map((r) => [r.message_id, r.state, r.attempts])).toEqual([
      [notJson, 'dead', 0],
      [`${topic}:0:1`, 'dead', 0],
      [noType, 'dead', 0],
      [unknownType, 'dead', 0],
      [badSchema, 'dead', 0],
      [good, 'processed', 1],
    ]);
    expect(consumer.counters).toMatchObject({ processed: 1, deadLettered: 5, retried: 0, errors: 0 });
    expect(consumer.lag()).toMatchObject({ total: 0, partitions: [{ topic, partition: 0, lag: 0 }] });
  });

  it('dead-letters a record whose message-id is not a UUID, keyed by its position, and applies the records after it', async () => {
    const { knex, outbox } = await fixture.service();
    const topic = randomTopic('orders');
    const dlq = `${topic}.dlq`;
    await createTopics(brokers, [topic, dlq], 1);
    const consumer = await fixture.consumer({ outbox, name: uniqueName('orders'), topics: [topic] });
    const handled: string[] = [];
    consumer.handle('OrderPlaced', async ({ trx, message }) => {
      handled.push(message.id);
      await apply(trx, message);
    });
    fixture.relay(outbox).start();
    const reader = await readTopics(brokers, [dlq]);
    fixture.defer(() => reader.stop());
    await consumer.start();

    // A foreign producer (raw kafkajs) that makes its ids up.
    const shouting = randomUUID().toUpperCase();
    const good = randomUUID();
    const record = (messageId: string) => ({
      key: 'o-1',
      value: '{"total": 5}',
      headers: { [HEADER.id]: messageId, [HEADER.type]: 'OrderPlaced' },
    });
    await fixture.produceRaw(topic, [
      record('order-42'), // offset 0
      record(''), // offset 1
      record(good.slice(0, -1)), // offset 2: one hex digit short
      record(`{${good}}`), // offset 3: braces
      record(shouting), // offset 4: a UUID in upper case is still that UUID
      record(shouting.toLowerCase()), // offset 5: ... so this is the same message again
      record(good), // offset 6
    ]);

    await expect.poll(() => consumer.counters.processed, { timeout: 20_000 }).toBe(2);
    await expect.poll(() => consumer.counters.duplicates).toBe(1);
    expect(handled).toEqual([shouting.toLowerCase(), good]);
    expect(await appliedTimes(knex)).toEqual(
      Object.fromEntries([shouting.toLowerCase(), good].sort().map((id) => [id, 1])),
    );

    const records = await reader.waitForCount(4);
    const errors = Object.fromEntries(
      records.map(
        (r) =>
          [
            r.headers[DLQ_HEADER.originalOffset],
            [r.headers[DLQ_HEADER.reason], r.headers[DLQ_HEADER.originalMessageId], r.headers[DLQ_HEADER.error]],
          ] as const,
      ),
    );
    const notUuid = (id: string) =>
      `the 'message-id' header must be a UUID (8-4-4-4-12 hex digits, as eventual producers set it), got ${JSON.stringify(id)}`;
    expect(errors).toEqual({
      '0': ['malformed', `${topic}:0:0`, notUuid('order-42')],
      '1': ['malformed', `${topic}:0:1`, notUuid('')],
      '2': ['malformed', `${topic}:0:2`, notUuid(good.slice(0, -1))],
      '3': ['malformed', `${topic}:0:3`, notUuid(`{${good}}`)],
    });
    const rows = await inboxRows(knex, consumer);
    expect(rows.map((r) => [r.message_id, r.state, r.attempts])).toEqual([
      [`${topic}:0:0`, 'dead', 0],
      [`${topic}:0:1`, 'dead', 0],
      [`${topic}:0:2`, 'dead', 0],
      [`${topic}:0:3`, 'dead', 0],
      [shouting.toLowerCase(), 'processed', 1],
      [good, 'processed', 1],
    ]);
    expect(consumer.counters).toMatchObject({ processed: 2, duplicates: 1, deadLettered: 4, retried: 0, errors: 0 });
  });
});
