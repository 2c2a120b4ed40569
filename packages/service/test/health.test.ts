import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidOptionError } from '@eventual/core';
import { createDatabase, startLocalPostgres } from '@eventual/devstack';
import { createTopics, randomTopic, testServices } from '@eventual/devstack/testing';
import { PublishError, type Publisher } from '@eventual/outbox';
import knexFactory from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { gate } from '../../consumer/test/support.js';
import { createService, healthHandler, kafkaTransport, type Service, type Transport } from '../src/index.js';

const services = testServices();
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

/** Fast group joins, so a test does not wait out kafkajs' default session timeouts. */
const kafka = () =>
  kafkaTransport(services.kafka('health'), {
    consumer: { sessionTimeout: 6_000, rebalanceTimeout: 10_000, heartbeatInterval: 300, maxWaitTimeInMs: 100 },
  });

/** The Kafka transport, whose publisher answers `unavailable` (as kafkajs does without a broker) while `down`. */
function switchableBroker(): Transport & { down: boolean } {
  const inner = kafka();
  const transport = {
    down: false,
    publisher(): Publisher {
      const publisher = inner.publisher();
      return {
        ...publisher,
        publish: async (records) => {
          if (transport.down)
            throw new PublishError('unavailable', 'connect ECONNREFUSED (the test took the broker away)');
          return publisher.publish(records);
        },
        close: () => publisher.close(),
      };
    },
    subscriber: (options: { groupId: string }) => inner.subscriber(options),
  };
  return transport;
}

async function consumingService(url: string, transport: Transport) {
  const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 12 } });
  cleanups.push(() => knex.destroy());
  const topic = randomTopic('health');
  await createTopics(services.kafkaBrokers, [topic], 1);
  const service = createService({
    name: `billing-${topic.slice(-6)}`,
    knex,
    transport,
    consumers: [{ topics: [topic], handlers: { OrderPlaced: () => {} } }],
  });
  cleanups.push(() => service.stop());
  return { service, topic, knex };
}

const check = async (service: Service, name: string) => (await service.health()).checks.find((c) => c.name === name);

describe('service.health()', () => {
  it('is live but not ready before start, ready once every part runs and the consumer joined its group', async () => {
    const { service } = await consumingService(await services.createDatabase('health'), kafka());
    const before = await service.health();
    expect(before.live).toBe(true);
    expect(before.ready).toBe(false);
    expect(before.checks.find((c) => c.name === 'service')).toEqual({
      name: 'service',
      ok: false,
      reason: `service '${service.name}' is idle`,
    });

    await service.start();
    await expect.poll(async () => (await service.health()).ready, { timeout: 30_000 }).toBe(true);
    const health = await service.health();
    expect(health.live).toBe(true);
    expect(health.checks.map((c) => [c.name, c.ok])).toEqual([
      ['service', true],
      ['database', true],
      ['broker', true],
      ['relay', true],
      ['scheduler', true],
      [`consumer ${service.name}`, true],
    ]);
    expect(health.checks.find((c) => c.name === 'relay')?.reason).toMatch(/^holds shard leases \d/);

    await service.stop();
    const after = await service.health();
    expect(after).toMatchObject({ live: false, ready: false });
    expect(after.checks.find((c) => c.name === `consumer ${service.name}`)).toMatchObject({
      ok: false,
      reason: 'consumer is stopped',
    });
  });

  it('is not ready, naming the database, while PostgreSQL is down, and ready again once it is back', async () => {
    // A server of its own: stopping the shared one would break the other test files.
    const server = await startLocalPostgres(join(await mkdtemp(join(tmpdir(), 'eventual-health-pg-')), 'pg.log'));
    cleanups.push(() => server.stop()); // runs after the service and its pool (cleanups run in reverse)
    const { service } = await consumingService(await createDatabase(server.adminUrl, 'health'), kafka());
    await service.start();
    await expect.poll(async () => (await service.health()).ready, { timeout: 30_000 }).toBe(true);

    await server.halt('fast');
    const down = await service.health({ timeoutMs: 5_000 });
    expect(down.live).toBe(true); // restarting the process would not bring the database back
    expect(down.ready).toBe(false);
    const database = down.checks.find((c) => c.name === 'database');
    expect(database?.ok).toBe(false);
    expect(database?.reason).toMatch(/^database (unreachable|did not answer select 1 within 5000 ms)/);
    expect(down.checks.filter((c) => !c.ok).map((c) => c.name)).toContain('database');
    // What /healthz asks: liveness without the database, so a hanging one cannot time the probe out.
    const liveness = await service.health({ database: false });
    expect(liveness.live).toBe(true);
    expect(liveness.checks.map((c) => c.name)).not.toContain('database');

    await server.resume();
    await expect.poll(async () => (await service.health()).ready, { timeout: 30_000 }).toBe(true);
  });

  it('is not ready, naming the relay, while the relay reports the broker unreachable, and ready after its next publish', async () => {
    const transport = switchableBroker();
    const { service, topic, knex } = await consumingService(await services.createDatabase('health'), transport);
    await service.start();
    await expect.poll(async () => (await service.health()).ready, { timeout: 30_000 }).toBe(true);

    transport.down = true;
    // The relay learns the broker is gone from its next publish.
    await knex.transaction((trx) =>
      service.outbox.enqueue(trx, { topic, key: 'o-1', type: 'OrderPlaced', payload: {} }),
    );
    await expect
      .poll(async () => (await check(service, 'broker'))?.reason ?? '', { timeout: 20_000 })
      .toMatch(/^relay: broker unreachable since .* \(connect ECONNREFUSED \(the test took the broker away\)\)$/);
    expect((await service.health()).ready).toBe(false);

    transport.down = false;
    await expect.poll(async () => (await check(service, 'broker'))?.ok, { timeout: 30_000 }).toBe(true);
    expect((await service.outbox.stats()).pending).toBe(0); // the message waited, then went out
  });

  it("is not live once a consumer's subscriber gave up, naming the error", async () => {
    // kafkajs giving up (a crash it does not restart from) reaches the consumer as a fatal error.
    const inner = kafka();
    let giveUp: ((error: Error, fatal: boolean) => void) | undefined;
    const transport: Transport = {
      publisher: () => inner.publisher(),
      subscriber(options) {
        const subscriber = inner.subscriber(options);
        return {
          groupId: subscriber.groupId,
          verify: (topics, timeoutMs) => subscriber.verify!(topics, timeoutMs),
          subscribe: (topics, handlers) => {
            giveUp = handlers.error;
            return subscriber.subscribe(topics, handlers);
          },
          close: () => subscriber.close(),
        };
      },
    };
    const { service } = await consumingService(await services.createDatabase('health'), transport);
    await service.start();
    await expect.poll(async () => (await service.health()).ready, { timeout: 30_000 }).toBe(true);

    giveUp!(new Error('The group coordinator is not available (restartOnFailure said no)'), false);
    expect((await service.health()).live).toBe(true); // a retried error is not a dead loop
    giveUp!(new Error('The group coordinator is not available (restartOnFailure said no)'), true);
    const health = await service.health();
    expect(health).toMatchObject({ live: false, ready: false });
    expect(health.checks.find((c) => c.name === `consumer ${service.name}`)).toEqual({
      name: `consumer ${service.name}`,
      ok: false,
      reason: 'the subscriber gave up: The group coordinator is not available (restartOnFailure said no)',
    });
  });

  it('serves /healthz and /readyz over node:http: 200 while live and ready, 503 with the reasons once stopped', async () => {
    const { service } = await consumingService(await services.createDatabase('health'), kafka());
    const server = createServer(healthHandler(service));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = async (path: string, init?: RequestInit) => {
      const response = await fetch(`${base}${path}`, init);
      return { status: response.status, type: response.headers.get('content-type'), body: await response.text() };
    };

    // Not started: alive (a liveness probe must not kill a starting process), not ready.
    expect((await get('/healthz')).status).toBe(200);
    const idle = await get('/readyz');
    expect(idle.status).toBe(503);
    expect(JSON.parse(idle.body).checks).toContainEqual({
      name: 'service',
      ok: false,
      reason: `service '${service.name}' is idle`,
    });

    await service.start();
    await expect.poll(async () => (await get('/readyz')).status, { timeout: 30_000 }).toBe(200);
    const ready = await get('/readyz?probe=kubelet');
    expect(ready.type).toBe('application/json; charset=utf-8');
    expect(JSON.parse(ready.body)).toMatchObject({ live: true, ready: true });
    expect(JSON.parse(ready.body).checks.map((c: { name: string }) => c.name)).toContain('database');
    const live = JSON.parse((await get('/healthz')).body);
    expect(live.checks.map((c: { name: string }) => c.name)).not.toContain('database');
    expect((await get('/readyz', { method: 'HEAD' })).body).toBe('');
    expect((await get('/metrics')).status).toBe(404);
    const post = await get('/healthz', { method: 'POST' });
    expect(post.status).toBe(405);

    await service.stop();
    const dead = await get('/healthz');
    expect(dead.status).toBe(503);
    expect(JSON.parse(dead.body)).toMatchObject({ live: false, ready: false });
    expect((await get('/readyz')).status).toBe(503);
  });

  it('counts a database that cannot hand out a connection within timeoutMs as not reachable', async () => {
    const knex = knexFactory({
      client: 'pg',
      connection: await services.createDatabase('health'),
      pool: { min: 0, max: 1 },
    });
    cleanups.push(() => knex.destroy());
    const service = createService({ name: 'tiny', knex, transport: kafka() });
    const [holding, released] = [gate(), gate()];
    // The pool's only connection is busy in a transaction until the test releases it.
    const transaction = knex.transaction(async () => {
      holding.open();
      await released.opened;
    });
    await holding.opened;
    const busy = await service.health({ timeoutMs: 200 });
    expect(busy.checks.find((c) => c.name === 'database')).toEqual({
      name: 'database',
      ok: false,
      reason: 'database did not answer select 1 within 200 ms',
    });
    released.open();
    await transaction;
    expect((await service.health()).checks.find((c) => c.name === 'database')).toEqual({ name: 'database', ok: true });
  });

  it('refuses a timeout that is not a positive integer', async () => {
    const { service } = await consumingService(await services.createDatabase('health'), kafka());
    await expect(service.health({ timeoutMs: 0 })).rejects.toThrow(InvalidOptionError);
    await expect(service.health({ database: 'no' as never })).rejects.toThrow(/health\(\) options.database must be/);
    expect(() => healthHandler(service, { timeoutMs: -1 })).toThrow(/options.timeoutMs must be an integer between 1/);
    expect(() => healthHandler({} as Service)).toThrow(InvalidOptionError);
  });
});
