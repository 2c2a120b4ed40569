import { fileURLToPath } from 'node:url';
import { testServices } from '@eventual/devstack/testing';
import { createKafkaPublisher, createOutbox, createRelay, type Outbox, type RelayOptions } from '@eventual/outbox';
import knexFactory, { type Knex } from 'knex';
import { afterAll } from 'vitest';

/** A relay in its own process (see fixtures/relay-process.ts), for crash tests. */
export const relayProcess = fileURLToPath(new URL('./fixtures/relay-process.ts', import.meta.url));

/**
 * Per test file: a fresh database with the outbox migrated, and cleanup of every
 * knex pool, relay and publisher the file created, in reverse order.
 */
export function outboxFixture(prefix: string) {
  const services = testServices();
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  const connect = (url: string, pool = 10): Knex => {
    const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: pool } });
    cleanups.push(() => knex.destroy());
    return knex;
  };

  return {
    services,
    connect,
    defer: (cleanup: () => Promise<unknown>) => cleanups.push(cleanup),
    async database(shards = 8): Promise<{ url: string; knex: Knex; outbox: Outbox }> {
      const url = await services.createDatabase(prefix);
      const knex = connect(url);
      const outbox = createOutbox({ knex, checkBack: { checkAfterMs: 0, backoff: { initialMs: 50, maxMs: 200 } } });
      await outbox.migrate({ shards });
      return { url, knex, outbox };
    },
    relay(outbox: Outbox, options: Partial<RelayOptions> = {}) {
      const publisher = options.publisher ?? createKafkaPublisher({ kafka: services.kafka('relay') });
      const relay = createRelay(outbox, {
        pollIntervalMs: 200,
        leaseTtlMs: 3_000,
        backoff: { initialMs: 50, maxMs: 500 },
        ...options,
        publisher,
      });
      cleanups.push(async () => {
        await relay.stop();
        await publisher.close();
      });
      return relay;
    },
  };
}
