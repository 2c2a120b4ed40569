import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { createKafkaPublisher, PublishError, type Publisher } from '@eventual/outbox';
import type { DataPoint, Histogram } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';
import { recordMetrics } from './telemetry-support.js';

const fixture = outboxFixture('relay_metrics');

const { points } = recordMetrics();

describe('relay metrics', () => {
  it('counts a failed send with its error.type, then the retry that got through, each timed', async () => {
    const { knex, outbox } = await fixture.database();
    const topic = randomTopic('orders');
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const kafka = createKafkaPublisher({ kafka: fixture.services.kafka('relay') });
    let calls = 0;
    const flaky: Publisher = {
      async publish(records) {
        calls += 1;
        if (calls === 1) throw new PublishError('retriable', 'the broker said no, this once');
        await kafka.publish(records);
      },
      close: () => kafka.close(),
    };
    await fixture.relay(outbox, { publisher: flaky }).start();
    // One message: its retry is one batch again (two would back off with different jitter).
    await knex.transaction((trx) => outbox.enqueue(trx, { topic, key: 'k-1', type: 'OrderPlaced', payload: {} }));
    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 20_000 }).toBe(0);

    const attributes = (p: DataPoint<unknown>) => p.attributes;
    const sent = await points('messaging.client.sent.messages');
    expect(sent.map((p) => ({ attributes: attributes(p), value: p.value }))).toEqual([
      {
        attributes: {
          'messaging.system': 'kafka',
          'messaging.operation.name': 'send',
          'messaging.destination.name': topic,
          'error.type': 'retriable',
        },
        value: 1,
      },
      {
        attributes: {
          'messaging.system': 'kafka',
          'messaging.operation.name': 'send',
          'messaging.destination.name': topic,
        },
        value: 1,
      },
    ]);
    const durations = await points('messaging.client.operation.duration');
    expect(durations.map((p) => [p.attributes['error.type'], (p.value as Histogram).count])).toEqual([
      ['retriable', 1],
      [undefined, 1],
    ]);
    expect(durations.every((p) => p.attributes['messaging.operation.type'] === 'send')).toBe(true);
  });
});
