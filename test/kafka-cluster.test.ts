import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Consumer, createConsumer, createKafkaSubscriber } from '@eventual/consumer';
import { type LocalKafkaCluster, startLocalKafkaCluster, waitUntil } from '@eventual/devstack';
import { createTopics, randomTopic, readTopics, testServices } from '@eventual/devstack/testing';
import { createKafkaPublisher, createOutbox, createRelay, type Message, type Relay } from '@eventual/outbox';
import { Kafka, logLevel } from 'kafkajs';
import knexFactory, { type Knex } from 'knex';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

// Production shape: three brokers, every topic replicated three ways with
// min.insync.replicas=2, the relay publishing with acks from all in-sync replicas.
// PostgreSQL is the run's shared one; the cluster is this file's own, because its
// tests kill brokers.
const services = testServices();
let cluster: LocalKafkaCluster;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  cluster = await startLocalKafkaCluster(await mkdtemp(join(tmpdir(), 'eventual-cluster-')));
}, 180_000);
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  // Whatever a test did to the brokers, the next one starts with all three.
  for (const node of cluster.nodes) if (!node.running) await node.start();
}, 180_000);
afterAll(async () => cluster?.destroy(), 60_000);

const GROUP_SETTINGS = {
  sessionTimeout: 6_000,
  rebalanceTimeout: 10_000,
  heartbeatInterval: 300,
  maxWaitTimeInMs: 100,
};
const KEYS = 12;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function kafka(clientId: string) {
  return new Kafka({ clientId, brokers: cluster.brokers, logLevel: logLevel.NOTHING, connectionTimeout: 1_000 });
}

function connect(url: string): Knex {
  const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 10 } });
  cleanups.push(() => knex.destroy());
  return knex;
}

/**
 * A producing service (outbox + relay) and a consuming service (inbox + an `applied`
 * table keyed by message id, and an append-only `applied_log` that keeps the order
 * and time of every application, so a double apply or a reordering cannot hide).
 */
async function pipeline(name: string) {
  const topic = randomTopic(name);
  await createTopics(cluster.brokers, [topic], 3, [{ name: 'min.insync.replicas', value: '2' }]);
  const producerDb = connect(await services.createDatabase(`${name}_producer`));
  const outbox = createOutbox({ knex: producerDb, logger: () => {} });
  await outbox.migrate({ shards: 4 });
  const consumerDb = connect(await services.createDatabase(`${name}_consumer`));
  const consumerOutbox = createOutbox({ knex: consumerDb });
  await consumerOutbox.migrate({ shards: 1 });
  await consumerDb.raw(`
    create table applied_log (
      seq bigserial primary key, message_id uuid not null, key text not null, n int not null,
      partition int not null, applied_at timestamptz not null default clock_timestamp())`);
  const group = `${topic}-group`;

  const relayEvents: string[] = [];
  const consumerEvents: string[] = [];
  const startRelay = async (): Promise<Relay> => {
    const publisher = createKafkaPublisher({ kafka: kafka(`${name}-relay`) });
    const relay = createRelay(outbox, {
      publisher,
      maxAttempts: 3,
      pollIntervalMs: 100,
      leaseTtlMs: 3_000,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    relay.on('relay:brokerUnavailable', () => relayEvents.push('unavailable'));
    relay.on('relay:brokerAvailable', () => relayEvents.push('available'));
    relay.on('relay:failed', ({ kind, error, messageIds }) =>
      relayEvents.push(`failed ${kind} ${messageIds.length} ${error.message}`),
    );
    cleanups.push(async () => {
      await relay.stop();
      await publisher.close();
    });
    await relay.start();
    return relay;
  };

  const startConsumer = async (instance: string): Promise<Consumer> => {
    const consumer = createConsumer({
      outbox: consumerOutbox,
      name: group,
      instanceId: instance,
      topics: [topic],
      retention: { schedule: false },
      backoff: { initialMs: 20, maxMs: 200 },
      subscriber: createKafkaSubscriber({ kafka: kafka(instance), groupId: group, consumer: GROUP_SETTINGS }),
      logger: () => {},
    });
    consumer.handle<{ key: string; n: number }>('Tick', async ({ trx, message, record }) => {
      await trx('applied_log').insert({
        message_id: message.id,
        key: message.payload.key,
        n: message.payload.n,
        partition: record.partition,
      });
    });
    consumer.on('consumer:brokerUnavailable', () => consumerEvents.push(`${instance} unavailable`));
    consumer.on('consumer:brokerAvailable', () => consumerEvents.push(`${instance} available`));
    consumer.on('consumer:error', ({ error }) => consumerEvents.push(`${instance} error ${error.message}`));
    consumer.on('consumer:assigned', ({ partitions }) =>
      consumerEvents.push(`${instance} assigned ${partitions.map((x) => x.partition).join(',')}`),
    );
    cleanups.push(() => consumer.stop());
    await consumer.migrate();
    await consumer.start();
    return consumer;
  };

  const sent: Message[] = [];
  const next = new Array<number>(KEYS).fill(0);
  /** Enqueues transactions of one message per key, `perSecond` messages a second, until `until` resolves. */
  const feed = async (until: Promise<unknown>, perSecond = 120) => {
    let done = false;
    // The scenario's own failure fails the test (after the feed stops), never unhandled.
    const failed = until.then(
      () => undefined,
      (error: unknown) => error,
    );
    void failed.then(() => {
      done = true;
    });
    while (!done) {
      const batch = next.map((n, k) => ({ topic, key: `k${k}`, type: 'Tick', payload: { key: `k${k}`, n } }));
      for (let k = 0; k < KEYS; k++) next[k]! += 1;
      sent.push(...(await producerDb.transaction((trx) => outbox.enqueue(trx, batch))));
      await sleep((1_000 * KEYS) / perSecond);
    }
    const error = await failed;
    if (error !== undefined) throw error;
  };

  /** Waits until every sent message is applied, then checks: once each, per-key order, nothing left. */
  const verify = async () => {
    let applied = 0;
    try {
      await waitUntil(
        `all ${sent.length} messages applied`,
        async () => {
          const [row] = await consumerDb('applied_log').countDistinct({ n: 'message_id' });
          applied = Number(row?.n);
          return applied >= sent.length ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 250 },
      );
    } catch (error) {
      // Say where they stopped: still in the outbox, or published and not consumed.
      const stats = await outbox.stats();
      const seen = new Set((await consumerDb('applied_log').select('message_id')).map((r) => r.message_id));
      const missing = sent.filter((m) => !seen.has(m.id));
      const reader = await readTopics(cluster.brokers, [topic]);
      await sleep(5_000);
      await reader.stop();
      const onKafka = reader.records.filter((r) => missing.some((m) => m.id === r.headers['message-id']));
      const rows = await producerDb('eventual.outbox')
        .whereIn(
          'id',
          missing.map((m) => m.id),
        )
        .select('id', 'key', 'state', 'attempts', 'published_at', 'created_at');
      console.log('[cluster] missing', JSON.stringify({ rows, onKafka, total: reader.records.length }));
      throw new Error(
        `${(error as Error).message}: ${applied} applied; outbox ${JSON.stringify(stats)}; relay ${JSON.stringify(relayEvents)}; consumers ${JSON.stringify(consumerEvents)}`,
      );
    }
    await sleep(1_000); // a duplicate still in flight would land now
    const log = await consumerDb('applied_log').orderBy('seq').select('message_id', 'key', 'n');
    expect(log).toHaveLength(sent.length); // nothing applied twice
    expect(new Set(log.map((r) => r.message_id))).toEqual(new Set(sent.map((m) => m.id)));
    const perKey = new Map<string, number[]>();
    for (const row of log) perKey.set(row.key, [...(perKey.get(row.key) ?? []), row.n]);
    for (const [key, ns] of perKey) expect(ns, `order of ${key}`).toEqual(ns.map((_, i) => i));
    const stats = await outbox.stats();
    expect(stats).toMatchObject({ pending: 0, dead: 0 });
    expect(await producerDb('eventual.outbox').where('attempts', '>', 1).count({ n: '*' })).toEqual([{ n: '0' }]);
  };

  /** The longest pause between two applications on `partition` after `since`: how long it stalled. */
  const longestStall = async (partition: number, since: Date) => {
    const { rows } = await consumerDb.raw<{ rows: Array<{ gap: number | null }> }>(
      `select extract(epoch from max(gap)) * 1000 as gap from (
         select applied_at - lag(applied_at) over (order by seq) as gap
         from applied_log where partition = ? and applied_at >= ?::timestamptz - interval '1 second') g`,
      [partition, since.toISOString()],
    );
    return Math.round(Number(rows[0]?.gap ?? 0));
  };

  /**
   * Where the worst delay on `partition` since `since` was spent: the relay (commit to
   * Kafka ack and mark) or the consumer (mark to applied), each the largest of its messages.
   */
  const worstDelays = async (partition: number, since: Date) => {
    const applied = await consumerDb('applied_log')
      .where({ partition })
      .andWhere('applied_at', '>=', since)
      .select('message_id', 'applied_at');
    const rows = await producerDb('eventual.outbox')
      .whereIn(
        'id',
        applied.map((r) => r.message_id),
      )
      .select('id', 'created_at', 'published_at');
    const appliedAt = new Map(applied.map((r) => [r.message_id, new Date(r.applied_at).getTime()]));
    let relayMs = 0;
    let consumerMs = 0;
    for (const r of rows) {
      const created = new Date(r.created_at).getTime();
      const published = new Date(r.published_at).getTime();
      relayMs = Math.max(relayMs, published - created);
      consumerMs = Math.max(consumerMs, (appliedAt.get(r.id) ?? published) - published);
    }
    return { relayMs, consumerMs };
  };

  return {
    worstDelays,
    topic,
    group,
    outbox,
    producerDb,
    consumerDb,
    relayEvents,
    startRelay,
    startConsumer,
    feed,
    verify,
    sent,
    longestStall,
  };
}

describe('a three-broker cluster, replication factor 3, min.insync.replicas 2', () => {
  it('the leader of a partition SIGKILLed mid-stream: nothing lost, nothing applied twice, per-key order kept', async () => {
    const p = await pipeline('leader_kill');
    const { replicas } = await topicLayout(p.topic);
    expect(replicas).toEqual([3, 3, 3]);
    await p.startRelay();
    await p.startConsumer('c1');
    const leader = await cluster.leaderOf(p.topic, 0);
    let killedAt = new Date();
    await p.feed(
      (async () => {
        await sleep(4_000);
        killedAt = new Date();
        await leader.kill();
        await sleep(8_000);
      })(),
    );
    await p.verify();
    const stall = await p.longestStall(0, killedAt);
    const worst = await p.worstDelays(0, killedAt);
    const moved = await cluster.leaderOf(p.topic, 0);
    expect(moved.id).not.toBe(leader.id);
    console.log(
      `[cluster] leader ${leader.id} of ${p.topic}/0 SIGKILLed: ${p.sent.length} messages, partition 0 stalled ${stall} ms at most (worst relay delay ${worst.relayMs} ms, worst consumer delay ${worst.consumerMs} ms), new leader ${moved.id}; relay events ${JSON.stringify(p.relayEvents)}`,
    );
  }, 240_000);

  it('two brokers down (below min.insync.replicas): the relay waits as unavailable, spends no attempts, and everything flows when one returns', async () => {
    const p = await pipeline('below_isr');
    const relay = await p.startRelay();
    await p.startConsumer('c1');
    await p.feed(sleep(1_000));
    await p.verify();

    const [first, second] = cluster.nodes as [LocalKafkaCluster['nodes'][0], LocalKafkaCluster['nodes'][0]];
    await first.kill();
    await second.kill();
    const downAt = Date.now();
    await p.feed(sleep(2_000));
    await waitUntil(
      'the relay to report the outage',
      async () => (p.relayEvents.includes('unavailable') ? true : undefined),
      {
        timeoutMs: 180_000,
      },
    );
    // Long enough for many publish attempts: none may count against the messages.
    await sleep(10_000);
    const during = await p.outbox.stats();
    expect(during.pending).toBeGreaterThan(0);
    expect(during.dead).toBe(0);
    expect(
      await p
        .producerDb('eventual.outbox')
        .where('attempts', '>', 0)
        .whereNot({ state: 'published' })
        .count({ n: '*' }),
    ).toEqual([{ n: '0' }]);

    const restartedAt = Date.now();
    await first.start();
    await p.verify();
    console.log(
      `[cluster] two of three brokers down for ${restartedAt - downAt} ms: relay events ${JSON.stringify(p.relayEvents)}; all ${p.sent.length} applied ${Date.now() - restartedAt} ms after one broker was back; relay failed counter ${relay.counters.failed}`,
    );
    expect(p.relayEvents.filter((e) => e.startsWith('failed'))).toEqual([]);
    expect(p.relayEvents.filter((e) => e === 'unavailable')).toHaveLength(1);
  }, 420_000);

  it('a rolling restart of all three brokers under load', async () => {
    const p = await pipeline('rolling');
    await p.startRelay();
    await p.startConsumer('c1');
    await p.startConsumer('c2');
    await p.feed(
      (async () => {
        await sleep(2_000);
        for (const node of cluster.nodes) {
          await node.stop();
          await node.start();
          await waitForFullIsr(p.topic);
        }
        await sleep(2_000);
      })(),
    );
    await p.verify();
    console.log(`[cluster] rolling restart: ${p.sent.length} messages, relay events ${JSON.stringify(p.relayEvents)}`);
  }, 300_000);

  it("the group coordinator's broker SIGKILLed mid-rebalance", async () => {
    const p = await pipeline('coordinator');
    await p.startRelay();
    await p.startConsumer('c1');
    await p.feed(
      (async () => {
        await sleep(2_000);
        const coordinator = await cluster.coordinatorOf(p.group);
        // A second member joins (the group rebalances) and the coordinator dies under it.
        const joining = p.startConsumer('c2');
        await sleep(300);
        await coordinator.kill();
        await joining;
        await sleep(8_000);
        console.log(`[cluster] coordinator ${coordinator.id} of ${p.group} SIGKILLed mid-rebalance`);
      })(),
    );
    await p.verify();
  }, 300_000);
});

async function topicLayout(topic: string) {
  const admin = kafka('layout').admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    const partitions = topics[0]?.partitions ?? [];
    return { replicas: partitions.map((x) => x.replicas.length), isr: partitions.map((x) => x.isr.length) };
  } finally {
    await admin.disconnect();
  }
}

async function waitForFullIsr(topic: string) {
  await waitUntil(
    `every partition of ${topic} back in sync on three replicas`,
    async () => ((await topicLayout(topic)).isr.every((n) => n === 3) ? true : undefined),
    { timeoutMs: 60_000, intervalMs: 250 },
  );
}
