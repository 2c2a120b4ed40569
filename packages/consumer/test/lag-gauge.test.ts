import { observeConsumerGauges } from '@eventual/consumer';
import { InvalidOptionError } from '@eventual/core';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { describe, expect, it } from 'vitest';
import { recordMetrics } from '../../outbox/test/telemetry-support.js';
import { consumerFixture, gate, uniqueName } from './support.js';

const fixture = consumerFixture('lag_gauge');
const { points } = recordMetrics();

describe('consumer lag gauge', () => {
  it('reports what a consumer that was stopped missed, per topic, as consumer.lag() computes it, down to 0 once it caught up', async () => {
    const { outbox } = await fixture.service();
    const topic = randomTopic('lag');
    await createTopics(fixture.services.kafkaBrokers, [topic], 1);
    const name = uniqueName('ledger');
    const lagGauge = async () =>
      (await points('eventual.consumer.lag', { 'messaging.destination.name': topic })).map((p) => ({
        group: p.attributes['messaging.consumer.group.name'],
        value: p.value,
      }));

    // The first instance applies two records, then stops.
    const first = await fixture.consumer({ outbox, name, topics: [topic] });
    first.handle('Credit', () => {});
    await first.start();
    await fixture.produce(
      topic,
      [0, 1].map((n) => ({ key: `k-${n}`, type: 'Credit', payload: { n } })),
    );
    await expect.poll(() => first.counters.processed, { timeout: 30_000 }).toBe(2);
    await first.stop();

    // Five records arrive while no instance runs; the next one blocks on the second of them.
    await fixture.produce(
      topic,
      [2, 3, 4, 5, 6].map((n) => ({ key: `k-${n}`, type: 'Credit', payload: { n } })),
    );
    const release = gate();
    const second = await fixture.consumer({ outbox, name, topics: [topic] });
    second.handle<{ n: number }>('Credit', async ({ message }) => {
      if (message.payload.n === 3) await release.opened;
    });
    const stopGauge = observeConsumerGauges(second);
    fixture.defer(async () => stopGauge());
    expect(await lagGauge()).toEqual([]); // nothing settled yet: nothing known, nothing made up
    await second.start();

    // Offset 2 settled with the high watermark at 7: 4 records behind (3, blocked, and 4-6).
    await expect.poll(() => second.counters.processed, { timeout: 30_000 }).toBe(1);
    expect(await lagGauge()).toEqual([{ group: name, value: 4 }]);
    expect(second.lag().total).toBe(4);

    release.open();
    await expect.poll(() => second.counters.processed, { timeout: 30_000 }).toBe(5);
    expect(await lagGauge()).toEqual([{ group: name, value: 0 }]);
  });

  it('refuses what is not a consumer', () => {
    expect(() => observeConsumerGauges({} as never)).toThrow(InvalidOptionError);
  });
});
