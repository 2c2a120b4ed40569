import { describe, expect, it } from 'vitest';
import { OutageTracker } from '../src/broker.js';
import { InvalidOptionError } from '../src/errors.js';
import { compareTopic, topicSpecs } from '../src/topic-spec.js';

describe('topicSpecs', () => {
  it('applies defaults and turns minInsyncReplicas and retentionMs into topic configs', () => {
    expect(
      topicSpecs('topics', [
        { name: 'orders', partitions: 6, replicationFactor: 3, minInsyncReplicas: 2, retentionMs: -1 },
      ]),
    ).toEqual([
      {
        name: 'orders',
        partitions: 6,
        replicationFactor: 3,
        config: { 'min.insync.replicas': '2', 'retention.ms': '-1' },
      },
    ]);
  });

  it('names the option and what to change', () => {
    expect(() => topicSpecs('topics', [{ name: 'a b', partitions: 1 }])).toThrow(
      /topics\[0\]\.name must be a legal Kafka topic/,
    );
    expect(() =>
      topicSpecs('topics', [
        { name: 'a', partitions: 1 },
        { name: 'a', partitions: 2 },
      ]),
    ).toThrow(/more than once/);
    expect(() => topicSpecs('topics', [{ name: 'a', partitions: 1, config: { 'retention.ms': 5 } }])).toThrow(
      InvalidOptionError,
    );
    expect(() =>
      topicSpecs('topics', [{ name: 'a', partitions: 1, retentionMs: 1, config: { 'retention.ms': '2' } }]),
    ).toThrow(/sets retention.ms twice/);
    expect(() => topicSpecs('topics', [{ name: 'a', partitions: 1, replicas: 3 }])).toThrow(/has no option 'replicas'/);
  });
});

describe('compareTopic', () => {
  const [spec] = topicSpecs('topics', [{ name: 't', partitions: 4, replicationFactor: 3, minInsyncReplicas: 2 }]);
  it('refuses fewer partitions, replicas or min.insync.replicas than declared', () => {
    const { errors } = compareTopic(spec!, {
      partitions: 2,
      replicationFactor: 1,
      config: { 'min.insync.replicas': '1' },
    });
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/2 partition\(s\), declared 4/);
    expect(errors[1]).toMatch(/replication factor 1, declared 3/);
    expect(errors[2]).toMatch(/min.insync.replicas is 1, declared 2/);
  });

  it('accepts more, as notes', () => {
    expect(
      compareTopic(spec!, { partitions: 8, replicationFactor: 3, config: { 'min.insync.replicas': '3' } }),
    ).toEqual({
      errors: [],
      notes: ['8 partitions, more than the 4 declared', 'min.insync.replicas is 3, declared 2 (left as it is)'],
    });
  });
});

describe('OutageTracker', () => {
  it('reports the first failure of an outage and its end once', () => {
    const outage = new OutageTracker();
    expect(outage.end(5)).toBeUndefined();
    expect([outage.begin(10), outage.begin(20), outage.begin(30)]).toEqual([true, false, false]);
    expect(outage.active).toBe(true);
    expect(outage.end(110)).toBe(100);
    expect(outage.end(120)).toBeUndefined();
    expect(outage.begin(130)).toBe(true);
  });
});
