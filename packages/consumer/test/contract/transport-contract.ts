import { randomUUID } from 'node:crypto';
import { setImmediate, setTimeout as simulateWork } from 'node:timers/promises';
import type { InboundRecord, Subscriber } from '@eventual/consumer';
import { sleep } from '@eventual/core';
import { randomTopic } from '@eventual/devstack/testing';
import type { Publisher } from '@eventual/outbox';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { idOf, outbound, type Probe, probe, seqOf } from './probe.js';

/** One Publisher/Subscriber pair, as the contract suite drives it. */
export interface TransportUnderTest {
  publisher(): Publisher;
  /** A new member of group `groupId`; a group with no committed offset starts at the first record. */
  subscriber(groupId: string): Subscriber;
  /** Creates topics with this many partitions before anything uses them. */
  createTopics(names: string[], partitions: number): Promise<void>;
  close(): Promise<void>;
}

export interface ContractOptions {
  /** Deadline of every wait for a condition: a real broker needs seconds for a group join. */
  waitMs: number;
}

/**
 * The behaviour every Publisher/Subscriber pair must show to be used under eventual's
 * relay and consumer (Watermill's test_pubsub.go): the guarantees the consumer's inbox
 * and offset handling are built on. Each transport's test file calls this once.
 */
export function describeTransportContract(
  name: string,
  setup: () => TransportUnderTest | Promise<TransportUnderTest>,
  { waitMs }: ContractOptions,
): void {
  describe(`transport contract: ${name}`, { timeout: 6 * waitMs }, () => {
    let transport: TransportUnderTest;
    let opened: Array<{ close(): Promise<void> }> = [];
    beforeEach(async () => {
      transport = await setup();
    });
    afterEach(async () => {
      for (const x of opened.reverse()) await x.close();
      opened = [];
      await transport.close();
    });

    const wait = { timeout: waitMs, interval: 20 };
    const group = () => `contract-${randomUUID()}`;
    const topic = async (partitions: number) => {
      const created = randomTopic('contract');
      await transport.createTopics([created], partitions);
      return created;
    };
    const publisher = () => {
      const p = transport.publisher();
      opened.push(p);
      return p;
    };
    const subscribe = async (groupId: string, topics: string[], p: Probe) => {
      const s = transport.subscriber(groupId);
      opened.push(s);
      await s.subscribe(topics, p.handlers);
      return s;
    };
    const ids = (records: InboundRecord[]) => records.map(idOf).sort();

    it('delivers published records with their key, value bytes and headers intact', async () => {
      const t = await topic(1);
      const sent = [
        outbound(t, 'order-1', 0, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }),
        outbound(t, 'order-1', 1, { 'x-note': 'värde ✓' }),
        outbound(t, 'ørder-2', 2),
      ];
      const before = Date.now();
      await publisher().publish(sent);
      const p = probe();
      await subscribe(group(), [t], p);
      await expect.poll(() => p.settled().length, wait).toBe(3);

      const got = p.delivered();
      expect(
        got.map(({ topic, partition, offset, key, headers }) => ({ topic, partition, offset, key, headers })),
      ).toEqual(sent.map((s, i) => ({ topic: t, partition: 0, offset: String(i), key: s.key, headers: s.headers })));
      got.forEach((r, i) => {
        expect(Buffer.isBuffer(r.value)).toBe(true);
        expect(r.value!.equals(Buffer.from(sent[i]!.value, 'utf8'))).toBe(true);
        expect(r.timestamp).toMatch(/^\d+$/);
        expect(Number(r.timestamp)).toBeGreaterThanOrEqual(before - 1_000);
        expect(Number(r.timestamp)).toBeLessThanOrEqual(Date.now() + 1_000);
      });
      for (const call of p.calls) {
        expect(call.highWatermark).toMatch(/^\d+$/);
        expect(BigInt(call.highWatermark)).toBeGreaterThan(BigInt(call.records.at(-1)!.offset));
      }
    });

    it('keeps per-key order across many keys on a multi-partition topic, one deliver at a time per partition', async () => {
      const t = await topic(4);
      const keys = Array.from({ length: 24 }, (_, i) => `customer-${i}`);
      // A deliver that yields, so a second call for the same partition would overlap it.
      const p = probe(async (records) => {
        await setImmediate();
        return records.length;
      });
      await subscribe(group(), [t], p);
      const pub = publisher();
      for (let n = 0; n < 5; n += 1) await pub.publish(keys.map((k) => outbound(t, k, n)));
      await pub.publish([5, 6, 7].map((n) => outbound(t, keys[0]!, n)));
      await expect.poll(() => p.settled().length, wait).toBe(keys.length * 5 + 3);

      const byKey = groupBy(p.delivered(), (r) => r.key!);
      for (const key of keys) {
        const records = byKey.get(key)!;
        expect(records.map(seqOf), key).toEqual(key === keys[0] ? [0, 1, 2, 3, 4, 5, 6, 7] : [0, 1, 2, 3, 4]);
        expect(new Set(records.map((r) => r.partition)).size, `${key} stays on one partition`).toBe(1);
      }
      const byPartition = groupBy(p.delivered(), (r) => r.partition);
      expect(byPartition.size, 'keys spread over partitions').toBeGreaterThan(1);
      for (const records of byPartition.values()) {
        const offsets = records.map((r) => BigInt(r.offset));
        expect(offsets.every((o, i) => i === 0 || o > offsets[i - 1]!)).toBe(true);
      }
      expect(p.overlaps).toEqual([]);
    });

    it('redelivers a record left unsettled and commits nothing after it ahead of it', async () => {
      const t = await topic(1);
      await publisher().publish([0, 1, 2, 3, 4].map((n) => outbound(t, 'k', n)));
      const g = group();
      const first = probe((records) => (seqOf(records[0]!) >= 2 ? 0 : 1));
      const s1 = await subscribe(g, [t], first);
      await expect.poll(() => first.calls.filter((c) => seqOf(c.records[0]!) === 2).length, wait).toBeGreaterThan(2);
      await s1.close();
      const seen = first.delivered().map(seqOf);
      expect(seen.slice(0, 3)).toEqual([0, 1, 2]);
      expect(new Set(seen.slice(2)), 'nothing after the unsettled record was delivered').toEqual(new Set([2]));

      const second = probe();
      await subscribe(g, [t], second);
      await expect.poll(() => second.settled().length, wait).toBe(3);
      expect(second.delivered().map(seqOf)).toEqual([2, 3, 4]);
    });

    it('resumes a group after close() at the first unsettled record of each partition', async () => {
      const t = await topic(2);
      const sent = Array.from({ length: 24 }, (_, n) => outbound(t, `key-${n}`, n));
      await publisher().publish(sent);
      const g = group();
      // Settles the first three records of each partition, also part of a call of two.
      const done = new Map<number, number>();
      const first = probe((records) => {
        let settled = 0;
        for (const r of records) {
          if ((done.get(r.partition) ?? 0) >= 3) break;
          done.set(r.partition, (done.get(r.partition) ?? 0) + 1);
          settled += 1;
        }
        return settled;
      }, 2);
      const s1 = await subscribe(g, [t], first);
      const stalled = (partition: number) =>
        first.calls.some((c) => c.records[0]!.partition === partition && c.settled < c.records.length);
      await expect.poll(() => stalled(0) && stalled(1), wait).toBe(true);
      await s1.close();
      expect(first.calls.some((c) => c.settled > 0 && c.settled < c.records.length)).toBe(true);

      const second = probe();
      await subscribe(g, [t], second);
      await expect.poll(() => first.settled().length + second.settled().length, wait).toBe(sent.length);
      const settledBefore = new Set(first.settled().map(idOf));
      expect(
        second.delivered().filter((r) => settledBefore.has(idOf(r))),
        'settled records redelivered',
      ).toEqual([]);
      expect([...settledBefore, ...second.delivered().map(idOf)].sort()).toEqual(sent.map((s) => s.id).sort());
      for (const partition of [0, 1])
        expect(second.delivered().find((r) => r.partition === partition)?.offset).toBe('3');
    });

    it('bounds every deliver call by maxRecords, with consecutive records of one partition', async () => {
      const t = await topic(1);
      await publisher().publish(Array.from({ length: 10 }, (_, n) => outbound(t, `k-${n}`, n)));
      const p = probe(undefined, 3);
      await subscribe(group(), [t], p);
      await expect.poll(() => p.settled().length, wait).toBe(10);
      for (const call of p.calls) {
        expect(call.records.length).toBeGreaterThanOrEqual(1);
        expect(call.records.length).toBeLessThanOrEqual(3);
        const first = BigInt(call.records[0]!.offset);
        expect(call.records.map((r) => BigInt(r.offset))).toEqual(call.records.map((_, i) => first + BigInt(i)));
      }
      expect(p.delivered().map((r) => r.offset)).toEqual(Array.from({ length: 10 }, (_, i) => String(i)));
    });

    it('delivers every record to each of two groups', async () => {
      const t = await topic(2);
      const sent = Array.from({ length: 20 }, (_, n) => outbound(t, `key-${n}`, n));
      await publisher().publish(sent);
      const a = probe();
      await subscribe(group(), [t], a);
      await expect.poll(() => a.settled().length, wait).toBe(20);
      const b = probe();
      await subscribe(group(), [t], b);
      await expect.poll(() => b.settled().length, wait).toBe(20);
      expect(ids(a.delivered())).toEqual(sent.map((s) => s.id).sort());
      expect(ids(b.delivered())).toEqual(sent.map((s) => s.id).sort());
    });

    it('aborts the signal of a slow deliver on close(), waits for it and commits what it settled', async () => {
      const t = await topic(1);
      await publisher().publish([outbound(t, 'k', 0), outbound(t, 'k', 1)]);
      const g = group();
      const seen = { started: false, aborted: false, finished: false };
      const p = probe(async (records, { signal }) => {
        if (seqOf(records[0]!) !== 0) return records.length;
        seen.started = true;
        // Waits for the abort (the deadline only keeps a broken transport from hanging the test).
        seen.aborted = !(await sleep(4 * waitMs, signal));
        await simulateWork(200); // the attempt in flight finishing after the abort
        seen.finished = true;
        return 1;
      });
      const s = await subscribe(g, [t], p);
      await expect.poll(() => seen.started, wait).toBe(true);
      await s.close();
      expect(seen).toEqual({ started: true, aborted: true, finished: true });
      expect(p.calls.map((c) => c.records.map(seqOf))).toEqual([[0]]);

      const next = probe();
      await subscribe(g, [t], next);
      await expect.poll(() => next.settled().length, wait).toBe(1);
      expect(next.delivered().map(seqOf)).toEqual([1]);
    });

    it('splits the partitions between two subscribers of one group, and moves them when one closes', async () => {
      const t = await topic(4);
      const g = group();
      const a = probe();
      const b = probe();
      await subscribe(g, [t], a);
      await expect.poll(() => a.owned().length, wait).toBe(4);
      const sb = await subscribe(g, [t], b);
      const split = () => {
        const [ownedA, ownedB] = [a.owned(), b.owned()];
        return ownedA.length > 0 && ownedB.length > 0 && new Set([...ownedA, ...ownedB]).size === 4
          ? ownedA.length + ownedB.length
          : 0;
      };
      await expect.poll(split, wait).toBe(4);

      const pub = publisher();
      const sent = Array.from({ length: 40 }, (_, n) => outbound(t, `key-${n}`, n));
      await pub.publish(sent);
      await expect.poll(() => a.settled().length + b.settled().length, wait).toBe(40);
      expect(ids([...a.delivered(), ...b.delivered()])).toEqual(sent.map((s) => s.id).sort());
      for (const member of [a, b])
        for (const r of member.delivered()) expect(member.owned()).toContain(`${r.topic}/${r.partition}`);

      await sb.close();
      await expect.poll(() => a.owned().length, wait).toBe(4);
      const later = Array.from({ length: 20 }, (_, n) => outbound(t, `key-${n}`, 100 + n));
      await pub.publish(later);
      await expect.poll(() => a.settled().filter((r) => seqOf(r) >= 100).length, wait).toBe(20);
      expect(b.delivered().filter((r) => seqOf(r) >= 100)).toEqual([]);
    });
  });
}

function groupBy<K>(records: InboundRecord[], keyOf: (r: InboundRecord) => K): Map<K, InboundRecord[]> {
  const groups = new Map<K, InboundRecord[]>();
  for (const r of records) groups.set(keyOf(r), [...(groups.get(keyOf(r)) ?? []), r]);
  return groups;
}
