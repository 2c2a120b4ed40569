import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKafkaSubscriber } from '@eventual/consumer';
import { type LocalKafka, startLocalKafka, waitUntil } from '@eventual/devstack';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { HEADER } from '@eventual/outbox';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture, FAST_GROUP, inboxRows, uniqueName } from './support.js';

const fixture = consumerFixture('broker_outage');
let broker: LocalKafka | undefined;
afterAll(async () => broker?.destroy());

describe('consumer while the Kafka broker is down', () => {
  it('reports the outage once, spends no attempts, and applies everything once when the broker is back', async () => {
    // A broker of its own: stopping the shared one would break the other test files.
    broker = await startLocalKafka(join(await mkdtemp(join(tmpdir(), 'eventual-consumer-outage-')), 'kafka.log'));
    const { brokers } = broker;
    const topic = randomTopic('outage');
    await createTopics(brokers, [topic], 3);
    const kafka = (clientId: string) =>
      new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING, connectionTimeout: 500, retry: { retries: 2 } });

    const { knex, outbox } = await fixture.service();
    const logged: string[] = [];
    const name = uniqueName('outage');
    const consumer = await fixture.consumer({
      outbox,
      name,
      topics: [topic],
      maxAttempts: 2,
      subscriber: createKafkaSubscriber({ kafka: kafka(name), groupId: name, consumer: FAST_GROUP }),
      logger: (e) => logged.push(`${e.level} ${e.message}`),
    });
    consumer.handle('Tick', ({ trx, message }) => apply(trx, message));
    const outages: string[] = [];
    consumer.on('consumer:brokerUnavailable', () => outages.push('unavailable'));
    consumer.on('consumer:brokerAvailable', () => outages.push('available'));
    const errors: string[] = [];
    consumer.on('consumer:error', ({ error }) => errors.push(`${error.name}: ${error.message}`));
    await consumer.start();

    let producer: Producer | undefined;
    const produce = async (from: number, to: number) => {
      producer ??= kafka('outage-producer').producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      const ids = Array.from({ length: to - from }, () => randomUUID());
      await producer.send({
        topic,
        acks: -1,
        messages: ids.map((id, i) => ({
          key: `k${(from + i) % 5}`,
          value: JSON.stringify({ n: from + i }),
          headers: { [HEADER.id]: id, [HEADER.type]: 'Tick', [HEADER.correlationId]: id, [HEADER.causationId]: id },
        })),
      });
      return ids;
    };
    fixture.defer(async () => producer?.disconnect());
    const sent = await produce(0, 20);
    await expect.poll(async () => Object.keys(await appliedTimes(knex)).length, { timeout: 30_000 }).toBe(20);

    await producer?.disconnect();
    producer = undefined;
    // SIGKILL: during a controlled shutdown (SIGTERM) the group can briefly be joined
    // again, which is truly a second outage; a crash is one.
    // Counted from here: a group coordinator still loading at the first join is reported
    // as a (short) outage of its own.
    const before = { outages: outages.length, logged: logged.length };
    await broker.kill();
    await waitUntil('the outage reported', async () => (outages.length > before.outages ? true : undefined), {
      timeoutMs: 60_000,
    });
    // kafkajs crashes and restarts its consumer again and again while the broker is away:
    // long enough for several cycles, and still one event.
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    expect(outages.slice(before.outages)).toEqual(['unavailable']);

    await broker.start();
    const answeredAt = Date.now();
    sent.push(...(await produce(20, 40)));
    await expect
      .poll(async () => Object.keys(await appliedTimes(knex)).length, { timeout: 60_000, interval: 100 })
      .toBe(40);
    // Reported, not asserted (issue 12's target is 5 s).
    console.log(
      `[outage] consumer: all 20 new records applied ${Date.now() - answeredAt} ms after the broker answered`,
    );

    // Once each way, in the events and in the log; nothing reported as an error.
    expect(outages.slice(before.outages)).toEqual(['unavailable', 'available']);
    const lines = logged.slice(before.logged);
    expect(lines.filter((l) => /broker is unreachable/.test(l))).toHaveLength(1);
    expect(lines.filter((l) => /broker is reachable again/.test(l))).toHaveLength(1);
    expect(errors).toEqual([]);
    // Everything applied exactly once, in one attempt each, nothing dead-lettered.
    const times = await appliedTimes(knex);
    expect(new Set(Object.keys(times))).toEqual(new Set(sent));
    expect(Object.values(times).every((n) => n === 1)).toBe(true);
    const rows = await inboxRows(knex, consumer);
    expect(rows.filter((r) => r.state !== 'processed')).toEqual([]);
    expect(rows.every((r) => r.attempts === 1)).toBe(true);
    expect(consumer.counters).toMatchObject({ deadLettered: 0 });
  }, 240_000);
});
