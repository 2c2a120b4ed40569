import { createMemoryBroker, partitionForKey } from '@eventual/consumer/memory';
import { InvalidOptionError } from '@eventual/core';
import { PublishError } from '@eventual/outbox';
import { Partitioners } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { assignPartitions } from '../src/memory/assignment.js';
import { outbound, probe, seqOf } from './contract/probe.js';

// What the in-memory broker does beyond the transport contract (transport-memory.test.ts).

const wait = { timeout: 5_000, interval: 10 };

describe('in-memory broker', () => {
  it('hashes a key to the partition Kafka’s default partitioner picks', () => {
    const kafkajs = Partitioners.DefaultPartitioner();
    for (const partitions of [1, 2, 3, 7, 12]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        replicas: [0],
        isr: [0],
        partitionErrorCode: 0,
        offlineReplicas: [],
      }));
      for (const key of ['', 'a', 'ab', 'abc', 'order-1', 'customer-42', 'ørder-ü', '日本語のキー', 'x'.repeat(101)])
        expect(partitionForKey(key, partitions), `${key} over ${partitions}`).toBe(
          kafkajs({ topic: 't', partitionMetadata, message: { key, value: null } }),
        );
    }
  });

  it('deals partitions round-robin to the members that subscribe to their topic', () => {
    const counts = new Map([
      ['a', 4],
      ['b', 2],
    ]);
    expect(assignPartitions([{ topics: ['a'] }, { topics: ['a'] }], counts)).toEqual([
      [
        { topic: 'a', partition: 0 },
        { topic: 'a', partition: 2 },
      ],
      [
        { topic: 'a', partition: 1 },
        { topic: 'a', partition: 3 },
      ],
    ]);
    const [first, second] = assignPartitions([{ topics: ['a', 'b'] }, { topics: ['b'] }], counts);
    expect(first!.map((tp) => `${tp.topic}${tp.partition}`)).toEqual(['a0', 'a1', 'a2', 'a3', 'b1']);
    expect(second!.map((tp) => `${tp.topic}${tp.partition}`)).toEqual(['b0']);
  });

  it('keeps what was published for assertions, and the offsets each group committed', async () => {
    const broker = createMemoryBroker({ partitions: 3 });
    await broker.publisher().publish([outbound('orders', 'o-1', 0), outbound('orders', 'o-5', 1)]);
    const stored = broker.records('orders');
    expect(stored.map((r) => [r.key, r.partition, r.offset, JSON.parse(r.value).n])).toEqual([
      ['o-1', partitionForKey('o-1', 3), '0', 0],
      ['o-5', partitionForKey('o-5', 3), '0', 1],
    ]);
    expect(stored[0]!.partition).not.toBe(stored[1]!.partition);
    expect(stored[0]!.headers).toEqual(outbound('orders', 'o-1', 0).headers);
    expect(broker.records('unknown')).toEqual([]);

    const p = probe();
    const subscriber = broker.subscriber({ groupId: 'billing' });
    await subscriber.subscribe(['orders'], p.handlers);
    await expect.poll(() => p.settled().length, wait).toBe(2);
    await subscriber.close();
    expect(broker.committed('billing')).toEqual(
      stored
        .map((r) => ({ topic: 'orders', partition: r.partition, offset: '1' }))
        .sort((a, b) => a.partition - b.partition),
    );
    expect(broker.committed('nobody')).toEqual([]);
  });

  it('fails the next publishes with the PublishError kind asked for, storing nothing', async () => {
    const broker = createMemoryBroker();
    const publisher = broker.publisher();
    publisher.failNext('unavailable', 2);
    publisher.failNext('permanent');
    for (const kind of ['unavailable', 'unavailable', 'permanent'])
      await expect(publisher.publish([outbound('payments', 'p', 0)])).rejects.toMatchObject({
        name: 'PublishError',
        kind,
      });
    expect(broker.records('payments')).toEqual([]);
    await publisher.publish([outbound('payments', 'p', 1)]);
    expect(broker.records('payments').map((r) => JSON.parse(r.value).n)).toEqual([1]);
  });

  it('refuses an unpublishable record as permanent, without storing the rest of its batch', async () => {
    const broker = createMemoryBroker();
    const error = await broker
      .publisher()
      .publish([outbound('fine', 'k', 0), outbound('not a topic!', 'k', 1)])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PublishError);
    expect(error).toMatchObject({ kind: 'permanent', message: expect.stringContaining('not a topic!') });
    expect(broker.records('fine')).toEqual([]);
  });

  it('starts a new group at the log end when fromBeginning is false', async () => {
    const broker = createMemoryBroker();
    const publisher = broker.publisher();
    await publisher.publish([outbound('events', 'k', 0)]);
    const p = probe();
    const subscriber = broker.subscriber({ groupId: 'late', fromBeginning: false });
    await subscriber.subscribe(['events'], p.handlers);
    await publisher.publish([outbound('events', 'k', 1)]);
    await expect.poll(() => p.settled().map(seqOf), wait).toEqual([1]);
    await subscriber.close();
  });

  it('pauses before redelivering an unsettled record, so a failing deliver does not spin', async () => {
    const broker = createMemoryBroker({ redeliveryDelayMs: 150 });
    await broker.publisher().publish([outbound('jobs', 'k', 0)]);
    const times: number[] = [];
    const p = probe(() => {
      times.push(Date.now());
      return times.length < 3 ? 0 : 1;
    });
    const subscriber = broker.subscriber({ groupId: 'workers' });
    await subscriber.subscribe(['jobs'], p.handlers);
    await expect.poll(() => p.settled().length, wait).toBe(1);
    await subscriber.close();
    expect(times).toHaveLength(3);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(140);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(140);
  });

  it('reports a deliver that rejects or miscounts, and delivers its records again', async () => {
    const broker = createMemoryBroker({ redeliveryDelayMs: 5 });
    await broker.publisher().publish([outbound('jobs', 'k', 0)]);
    let calls = 0;
    const p = probe(() => {
      calls += 1;
      if (calls === 1) throw new Error('a bug in deliver');
      return calls === 2 ? 7 : 1;
    });
    const subscriber = broker.subscriber({ groupId: 'workers' });
    await subscriber.subscribe(['jobs'], p.handlers);
    await expect.poll(() => calls, wait).toBe(3);
    await subscriber.close();
    expect(p.errors.map((e) => e.message)).toEqual([
      'a bug in deliver',
      expect.stringContaining('deliver resolved 7 for 1 record(s)'),
    ]);
    expect(broker.committed('workers')).toEqual([{ topic: 'jobs', partition: 0, offset: '1' }]);
  });

  it('rejects bad options, a second subscribe and a topic re-created with another partition count', async () => {
    expect(() => createMemoryBroker({ partitions: 0 })).toThrow(/partitions must be an integer between 1/);
    expect(() => createMemoryBroker({ partition: 2 } as never)).toThrow(/no option 'partition'/);
    const broker = createMemoryBroker({ partitions: 2 });
    expect(() => broker.subscriber({ groupId: '' })).toThrow(InvalidOptionError);
    expect(() => broker.subscriber({ groupId: 'g', fromBeginning: 'yes' } as never)).toThrow(/fromBeginning/);
    broker.createTopic('fixed', { partitions: 4 });
    broker.createTopic('fixed', { partitions: 4 });
    expect(() => broker.createTopic('fixed', { partitions: 2 })).toThrow(/already exists with 4 partition/);
    await broker.publisher().publish([outbound('auto', 'k', 0)]);
    expect(() => broker.createTopic('auto', { partitions: 3 })).toThrow(/already exists with 2 partition/);

    const subscriber = broker.subscriber({ groupId: 'g' });
    await expect(subscriber.subscribe([], probe().handlers)).rejects.toThrow(/non-empty array of topics/);
    await expect(subscriber.subscribe(['fixed'], { ...probe().handlers, maxRecords: 0 })).rejects.toThrow(/maxRecords/);
    await subscriber.subscribe(['fixed'], probe().handlers);
    await expect(subscriber.subscribe(['fixed'], probe().handlers)).rejects.toThrow(/already in use/);
    await subscriber.close();
    await subscriber.close();
    await expect(subscriber.subscribe(['fixed'], probe().handlers)).rejects.toThrow(/already closed/);
  });
});
