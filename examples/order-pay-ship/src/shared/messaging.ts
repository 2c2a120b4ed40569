import type { ConsumerSettings, Service, ServiceOptions } from '@eventual/service';
import { kafkaTransport } from '@eventual/service';
import type { MessagingConfig } from './config.js';
import { GROUP_SETTINGS, kafkaClient } from './kafka.js';
import { errorText, type Logger } from './log.js';
import { groupFor } from './topics.js';

/**
 * What the three services share in their `createService` options: the Kafka
 * transport, and settings chosen for processes that get SIGKILLed in the demo's chaos
 * mode: a crashed relay's shard leases and a crashed scheduler's job leases expire in
 * seconds, not minutes, and group members are noticed gone within 6 s.
 */
export function serviceSettings(
  service: string,
  config: MessagingConfig,
  log: Logger,
): Pick<ServiceOptions, 'name' | 'transport' | 'instanceId' | 'logger' | 'outbox' | 'relay' | 'scheduler'> {
  return {
    name: service,
    // What eventual itself has to say (a listener that threw, a checker that failed).
    logger: (e) => {
      if (e.level === 'error' || e.level === 'warn')
        log(`eventual ${e.namespace}: ${e.message}${e.error ? `: ${errorText(e.error)}` : ''}`);
    },
    transport: kafkaTransport(kafkaClient(`${service}-${process.pid}`, config.brokers), {
      consumer: GROUP_SETTINGS,
      partitionsConcurrently: 4,
    }),
    ...(config.instanceId ? { instanceId: config.instanceId } : {}),
    outbox: { shards: 8 },
    relay: { pollIntervalMs: 250, leaseTtlMs: 3_000, backoff: { initialMs: 200, maxMs: 5_000 } },
    scheduler: { schedules: { checkback: '* * * * * *' }, runLeaseMs: 10_000 },
  };
}

/** A service's consumer: named after it (the inbox key, stable across restarts), in its namespaced group. */
export function consumerSettings(service: string, config: MessagingConfig): ConsumerSettings & { name: string } {
  return {
    name: service,
    groupId: groupFor(config.namespace, service),
    maxAttempts: 10,
    backoff: { initialMs: 100, maxMs: 2_000 },
  };
}

/** The events worth a line in the service's log. */
export function logServiceEvents(service: Service, log: Logger): void {
  service.relay.on('relay:dead', (e) => log(`outbox message ${e.messageId} to ${e.topic} is dead: ${e.error}`));
  service.outbox.on('checkback:resolved', (e) =>
    log(`check-back resolved prepared message ${e.messageId}: ${e.resolution}`),
  );
  service.outbox.on('checkback:exhausted', (e) =>
    log(`check-back gave up on ${e.messageId} after ${e.checks} checks: ${e.resolution}`),
  );
  service.scheduler.on('scheduler:error', (e) => log(`scheduled job ${e.job} failed: ${errorText(e.error)}`));
  for (const consumer of service.consumers.values()) {
    consumer.on('consumer:deadLettered', (e) =>
      log(`dead-lettered ${e.messageId} from ${e.topic} (${e.reason}): ${e.error}`),
    );
    consumer.on('consumer:retried', (e) =>
      log(`retrying ${e.messageId} (attempt ${e.attempt}): ${errorText(e.error)}`),
    );
  }
}
