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
    const consumer = await fixture.consumer({ outbox, name: uniqueName('orders'), topics: [topic] });
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
});
