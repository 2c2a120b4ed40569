import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalKafka, startLocalKafka, waitUntil } from '@eventual/devstack';
import { createTopics, randomTopic, readTopics } from '@eventual/devstack/testing';
import { createKafkaPublisher, createOutbox, createRelay, HEADER, type Message } from '@eventual/outbox';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('outage');
let broker: LocalKafka | undefined;
afterAll(async () => broker?.destroy());

describe('relay while the Kafka broker is down', () => {
  it('loses nothing, spends no attempts, and publishes everything in per-key order once the broker is back', async () => {
    // A broker of its own: stopping the shared one would break the other test files.
    broker = await startLocalKafka(join(await mkdtemp(join(tmpdir(), 'eventual-outage-')), 'kafka.log'));
    const { knex, outbox } = await fixture.database(4);
    const topic = randomTopic('outage');
    await createTopics(broker.brokers, [topic], 3);
    const kafka = new Kafka({
      clientId: 'outage-relay',
      brokers: broker.brokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: 1 },
      connectionTimeout: 500,
    });
    const publisher = createKafkaPublisher({ kafka });
    const logged: string[] = [];
    const relay = createRelay(createOutbox({ knex, logger: (e) => logged.push(`${e.level} ${e.message}`) }), {
      publisher,
      maxAttempts: 3,
      pollIntervalMs: 200,
      leaseTtlMs: 3_000,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    fixture.defer(() => relay.stop());
    const failures: string[] = [];
    relay.on('relay:failed', ({ kind }) => failures.push(kind));
    const outages: string[] = [];
    relay.on('relay:brokerUnavailable', () => outages.push('unavailable'));
    relay.on('relay:brokerAvailable', () => outages.push('available'));
    await relay.start();

    const enqueue = (from: number, to: number) =>
      knex.transaction((trx) =>
        outbox.enqueue(
          trx,
          Array.from({ length: to - from }, (_, i) => ({
            topic,
            key: `k${(from + i) % 7}`,
            type: 'Tick',
            payload: { n: from + i },
          })),
        ),
      );
    const sent: Message[] = [...(await enqueue(0, 50))];
    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 20_000 }).toBe(0);

    await broker.stop();
    for (let batch = 50; batch < 250; batch += 50) sent.push(...(await enqueue(batch, batch + 50)));
    // The relay notices the outage once, and keeps trying while the broker is away...
    await waitUntil('the outage reported', async () => (outages.length > 0 ? true : undefined), { timeoutMs: 60_000 });
    const published = relay.counters.failed;
    await waitUntil(
      'publish retries during the outage',
      async () => (relay.counters.failed >= published + 3 * 50 ? true : undefined),
      { timeoutMs: 60_000 },
    );
    const during = await outbox.stats();
    expect(during.pending).toBe(200);
    // ...without spending the messages' attempt budget (maxAttempts is only 3).
    expect(during.dead).toBe(0);
    expect(
      await knex('eventual.outbox').where('attempts', '>', 0).whereNot({ state: 'published' }).count({ n: '*' }),
    ).toEqual([{ n: '0' }]);

    await broker.start();
    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 60_000, interval: 200 }).toBe(0);
    expect((await outbox.stats()).dead).toBe(0);
    // One event and one log line when the outage began and when it ended, not one per retry.
    expect(outages).toEqual(['unavailable', 'available']);
    expect(failures).toEqual([]);
    expect(logged.filter((l) => /broker is unreachable/.test(l))).toHaveLength(1);
    expect(logged.filter((l) => /broker is reachable again/.test(l))).toHaveLength(1);

    const reader = await readTopics(broker.brokers, [topic]);
    fixture.defer(() => reader.stop());
    await reader.waitFor(
      'every message',
      (r) => new Set(r.map((x) => x.headers[HEADER.id])).size >= sent.length,
      60_000,
    );
    const firstSeen = new Map<string, { key: string; n: number }>();
    for (const r of reader.records) {
      const id = r.headers[HEADER.id]!;
      if (!firstSeen.has(id)) firstSeen.set(id, { key: r.key!, n: (JSON.parse(r.value!) as { n: number }).n });
    }
    expect(new Set(firstSeen.keys())).toEqual(new Set(sent.map((m) => m.id)));
    const perKey = new Map<string, number[]>();
    for (const { key, n } of firstSeen.values()) perKey.set(key, [...(perKey.get(key) ?? []), n]);
    for (const [key, ns] of perKey) expect(ns, `order of ${key}`).toEqual([...ns].sort((a, b) => a - b));
  }, 180_000);
});
