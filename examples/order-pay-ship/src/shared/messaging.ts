import { type Consumer, createConsumer, createKafkaSubscriber } from '@eventual/consumer';
import type { PeriodicJob, Scheduler } from '@eventual/core';
import {
  type CheckBackOptions,
  createKafkaPublisher,
  createOutbox,
  createRelay,
  createScheduler,
  type Outbox,
} from '@eventual/outbox';
import type { Knex } from 'knex';
import { GROUP_SETTINGS, kafkaClient } from './kafka.js';
import { errorText, type Logger } from './log.js';
import { groupFor } from './topics.js';

export interface MessagingOptions {
  service: string;
  knex: Knex;
  brokers: string[];
  namespace: string;
  /** Topics this service consumes. */
  consumes: string[];
  checkBack?: CheckBackOptions;
  /**
   * More periodic jobs, run once per cluster (the orchestrator's saga sweep). Asked for
   * at start, so a component built on this messaging's outbox can contribute its own.
   */
  jobs?: () => readonly PeriodicJob[];
  log: Logger;
}

/**
 * The eventual plumbing every service has: its outbox (in its own database), a relay
 * that moves the outbox into Kafka, an idempotent consumer (inbox in the same
 * database) and the scheduler for check-back and housekeeping.
 *
 * Settings are chosen for processes that get SIGKILLed in the demo's chaos mode: a
 * crashed relay's shard leases and a crashed scheduler's job leases expire in seconds,
 * not minutes, so the restarted process picks up at once.
 */
export function createMessaging(options: MessagingOptions) {
  const { service, knex, log } = options;
  const kafka = kafkaClient(`${service}-${process.pid}`, options.brokers);
  const outbox = createOutbox({ knex, ...(options.checkBack ? { checkBack: options.checkBack } : {}) });
  const publisher = createKafkaPublisher({ kafka });
  const relay = createRelay(outbox, {
    publisher,
    pollIntervalMs: 250,
    leaseTtlMs: 3_000,
    backoff: { initialMs: 200, maxMs: 5_000 },
  });
  const group = groupFor(options.namespace, service);
  const consumer: Consumer = createConsumer({
    outbox,
    // The inbox key: stable across restarts, so a redelivered message is recognised.
    name: service,
    topics: options.consumes,
    subscriber: createKafkaSubscriber({ kafka, groupId: group, partitionsConcurrently: 4, consumer: GROUP_SETTINGS }),
    maxAttempts: 10,
    backoff: { initialMs: 100, maxMs: 2_000 },
  });
  let scheduler: Scheduler | undefined;
  const startScheduler = async () => {
    scheduler = createScheduler(outbox, {
      schedules: { checkback: '* * * * * *' },
      runLeaseMs: 10_000,
      jobs: [...consumer.jobs, ...(options.jobs?.() ?? [])],
    });
    scheduler.on('scheduler:error', (e) => log(`scheduled job ${e.job} failed: ${errorText(e.error)}`));
    await scheduler.start();
  };

  relay.on('relay:dead', (e) => log(`outbox message ${e.messageId} to ${e.topic} is dead: ${e.error}`));
  outbox.on('checkback:resolved', (e) => log(`check-back resolved prepared message ${e.messageId}: ${e.resolution}`));
  outbox.on('checkback:exhausted', (e) =>
    log(`check-back gave up on ${e.messageId} after ${e.checks} checks: ${e.resolution}`),
  );
  consumer.on('consumer:deadLettered', (e) =>
    log(`dead-lettered ${e.messageId} from ${e.topic} (${e.reason}): ${e.error}`),
  );
  consumer.on('consumer:retried', (e) => log(`retrying ${e.messageId} (attempt ${e.attempt}): ${errorText(e.error)}`));

  return {
    outbox: outbox as Outbox,
    consumer,
    async migrate(): Promise<void> {
      await outbox.migrate({ shards: 8 });
      await consumer.migrate();
    },
    async start(): Promise<void> {
      await relay.start();
      await startScheduler();
      await consumer.start();
    },
    /** Graceful: the record in flight commits, the relay marks its batch, leases are handed back. */
    async stop(): Promise<void> {
      await consumer.stop();
      await scheduler?.stop();
      await relay.stop(); // closes its publisher
    },
  };
}

export type Messaging = ReturnType<typeof createMessaging>;
