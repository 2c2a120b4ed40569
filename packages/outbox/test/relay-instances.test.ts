import { waitUntil } from '@eventual/devstack';
import { createTopics, type ReadRecord, randomTopic, readTopics, startChild } from '@eventual/devstack/testing';
import {
  createKafkaPublisher,
  HEADER,
  type Message,
  type MessageInput,
  type Outbox,
  type Publisher,
} from '@eventual/outbox';
import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { outboxFixture, relayProcess } from './support.js';

const fixture = outboxFixture('instances');

/** Enqueues `perKey` messages for each of `keys` keys, seq 0.. in order, in transactions of `perTx`. */
async function enqueueSequences(
  knex: Knex,
  outbox: Outbox,
  topic: string,
  keys: number,
  perKey: number,
  perTx = 200,
): Promise<Message[]> {
  const inputs: MessageInput[] = [];
  for (let seq = 0; seq < perKey; seq++) {
    for (let k = 0; k < keys; k++)
      inputs.push({ topic, key: `key-${k}`, type: 'Seq', payload: { key: `key-${k}`, seq } });
  }
  const all: Message[] = [];
  for (let i = 0; i < inputs.length; i += perTx) {
    all.push(...(await knex.transaction((trx) => outbox.enqueue(trx, inputs.slice(i, i + perTx)))));
  }
  return all;
}

/** Every message arrived, and for every key the first arrivals are in seq order. */
function expectCompleteAndOrdered(records: ReadRecord[], sent: Message[]): void {
  const firstSeen = new Map<string, ReadRecord>();
  for (const r of records) {
    const id = r.headers[HEADER.id]!;
    if (!firstSeen.has(id)) firstSeen.set(id, r);
  }
  expect(new Set(firstSeen.keys())).toEqual(new Set(sent.map((m) => m.id)));
  const byKey = new Map<string, number[]>();
  for (const r of firstSeen.values()) {
    const { key, seq } = JSON.parse(r.value!) as { key: string; seq: number };
    byKey.set(key, [...(byKey.get(key) ?? []), seq]);
  }
  for (const [key, seqs] of byKey) expect(seqs, `order of ${key}`).toEqual(seqs.map((_, i) => i));
}

describe('several relay instances on one outbox table', () => {
  for (const instances of [2, 3]) {
    it(`${instances} instances publish every message once marked, keeping per-key order over thousands of messages`, async () => {
      const { knex, outbox } = await fixture.database(16);
      const topic = randomTopic('multi');
      await createTopics(fixture.services.kafkaBrokers, [topic], 6);
      const reader = await readTopics(fixture.services.kafkaBrokers, [topic]);
      fixture.defer(() => reader.stop());
      const relays = Array.from({ length: instances }, (_, i) =>
        fixture.relay(outbox, { instanceId: `relay-${i}`, batchSize: 100, leaseTtlMs: 2_000 }),
      );
      for (const relay of relays) await relay.start();

      const sent = await enqueueSequences(knex, outbox, topic, 150, 20); // 3,000 messages
      await reader.waitFor(
        'every message',
        (r) => new Set(r.map((x) => x.headers[HEADER.id])).size >= sent.length,
        60_000,
      );
      await expect.poll(async () => (await outbox.stats()).pending, { timeout: 20_000 }).toBe(0);

      expectCompleteAndOrdered(reader.records, sent);
      // Every instance got a fair share of the 16 shards, and no shard has two owners.
      await waitUntil(
        'a fair split of the shards',
        async () => (relays.every((r) => r.ownedShards().length >= Math.floor(16 / instances)) ? true : undefined),
        { timeoutMs: 10_000 },
      );
      const owned = relays.flatMap((r) => r.ownedShards());
      expect(new Set(owned).size).toBe(owned.length);
    });
  }

  it("hands a killed instance's shards to the survivors within the lease TTL, losing nothing", async () => {
    const { url, knex, outbox } = await fixture.database(16);
    const topic = randomTopic('handover');
    await createTopics(fixture.services.kafkaBrokers, [topic], 6);
    const reader = await readTopics(fixture.services.kafkaBrokers, [topic]);
    fixture.defer(() => reader.stop());
    const ttl = 2_000;
    const brokers = fixture.services.kafkaBrokers.join(',');
    const doomed = startChild(relayProcess, [url, brokers, 'run', String(ttl)]);
    const survivor = startChild(relayProcess, [url, brokers, 'run', String(ttl)]);
    fixture.defer(() => doomed.kill());
    fixture.defer(() => survivor.kill());
    const doomedId = (await doomed.waitFor('started')).instanceId as string;
    await survivor.waitFor('started');
    await waitUntil(
      'both instances to hold shards',
      async () => {
        const { rows } = await knex.raw(
          `select owner, count(*)::int as n from eventual.outbox_leases where name like 'relay:shard:%' and expires_at > now() group by owner`,
        );
        return rows.length === 2 ? rows : undefined;
      },
      { timeoutMs: 15_000 },
    );

    const sending = enqueueSequences(knex, outbox, topic, 100, 20, 50); // 2,000 messages while we kill
    await doomed.waitFor('published');
    const killedAt = Date.now();
    await doomed.kill();
    const sent = await sending;

    const takenOverAfter = await waitUntil(
      'the survivor to hold all 16 shards',
      async () => {
        const { rows } = await knex.raw(
          `select count(*)::int as n from eventual.outbox_leases where name like 'relay:shard:%' and owner <> ? and expires_at > now()`,
          [doomedId],
        );
        return rows[0].n === 16 ? Date.now() - killedAt : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    // Lease TTL plus one keeper interval (TTL/3) plus scheduling slack.
    expect(takenOverAfter).toBeLessThan(ttl + ttl / 3 + 2_000);

    await reader.waitFor(
      'every message',
      (r) => new Set(r.map((x) => x.headers[HEADER.id])).size >= sent.length,
      60_000,
    );
    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 20_000 }).toBe(0);
    expectCompleteAndOrdered(reader.records, sent);
  });

  it('a stale instance whose lease was taken over cannot mark the rows it published', async () => {
    const { knex, outbox } = await fixture.database(1);
    const topic = randomTopic('stale');
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const kafka = createKafkaPublisher({ kafka: fixture.services.kafka('stale') });
    fixture.defer(() => kafka.close());
    let releasePublish: () => void = () => {};
    const published = new Promise<void>((resolve) => {
      releasePublish = resolve;
    });
    let entered: () => void = () => {};
    const publishEntered = new Promise<void>((resolve) => {
      entered = resolve;
    });
    // Publishes, then stalls (a GC pause, a network hiccup) until the test lets it go on.
    const stalling: Publisher = {
      async publish(records) {
        await kafka.publish(records);
        entered();
        await published;
      },
      close: async () => {},
    };
    const fenced: string[][] = [];
    const stale = fixture.relay(outbox, { publisher: stalling, instanceId: 'stale', leaseTtlMs: 60_000 });
    stale.on('relay:fenced', ({ messageIds, instanceId }) => {
      expect(instanceId).toBe('stale');
      fenced.push(messageIds);
    });
    await stale.start();
    const [message] = await knex.transaction((trx) =>
      outbox.enqueue(trx, [{ topic, key: 'k', type: 'T', payload: {} }]),
    );
    await publishEntered;

    // Meanwhile the lease moved to another instance (as after an expiry): a new token.
    await knex.raw(
      `update eventual.outbox_leases set owner = 'intruder', token = token + 1 where name = 'relay:shard:0'`,
    );
    releasePublish();

    await waitUntil('the stale mark to be fenced', async () => (fenced.length > 0 ? true : undefined), {
      timeoutMs: 10_000,
    });
    expect(fenced).toEqual([[message?.id]]);
    expect((await knex('eventual.outbox').where({ id: message?.id }).first()).state).toBe('pending');
    expect(stale.counters.fenced).toBe(1);
  });
});
