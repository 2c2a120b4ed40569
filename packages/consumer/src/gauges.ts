import { asError, InvalidOptionError, MESSAGING, observeGauges } from '@eventual/core';
import type { Consumer } from './consumer.js';

const GAUGES = {
  lag: {
    name: 'eventual.consumer.lag',
    unit: '{message}',
    description:
      "Records behind the high watermark on this instance's partitions, as of each one's last settled record, per topic.",
  },
} as const;

/**
 * Registers `eventual.consumer.lag` with the registered OpenTelemetry meter provider:
 * `consumer.lag()` summed per topic (`messaging.destination.name`) with the group
 * (`messaging.consumer.group.name`), read from memory at each collection (no call to
 * the broker, no query). Each instance reports the partitions it owns: sum over
 * instances. Returns the function that unregisters it; `createService` registers it
 * at start and removes it at stop.
 */
export function observeConsumerGauges(consumer: Consumer): () => void {
  if (typeof (consumer as Partial<Consumer> | null)?.lag !== 'function')
    throw new InvalidOptionError('observeConsumerGauges(consumer) needs a consumer created with createConsumer()');
  const group = consumer.options.subscriber.groupId ?? consumer.name;
  return observeGauges(
    '@eventual/consumer',
    GAUGES,
    async () => {
      const byTopic = new Map<string, number>();
      for (const p of consumer.lag().partitions) byTopic.set(p.topic, (byTopic.get(p.topic) ?? 0) + p.lag);
      return [...byTopic].map(([topic, lag]) => ({
        gauge: 'lag' as const,
        value: lag,
        attributes: { [MESSAGING.destination]: topic, [MESSAGING.consumerGroup]: group },
      }));
    },
    {
      intervalMs: 0, // memory only: nothing to spare
      onError: (error) =>
        consumer.options.logger({
          level: 'warn',
          namespace: 'consumer',
          message: `consumer '${consumer.name}': its lag gauge could not be read`,
          error: asError(error),
        }),
    },
  );
}
