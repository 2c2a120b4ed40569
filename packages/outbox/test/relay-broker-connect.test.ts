import { createServer, type Server, type Socket } from 'node:net';
import { BrokerUnreachableError, createKafkaPublisher } from '@eventual/outbox';
import { Kafka, type KafkaConfig, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('connect');
const servers: Server[] = [];
const sockets: Socket[] = [];
afterAll(async () => {
  // kafkajs may still be waiting on the silent broker within its own retry settings.
  for (const socket of sockets) socket.destroy();
  for (const s of servers) await new Promise((resolve) => s.close(resolve));
});

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP server that accepts connections and never answers: a hung broker. */
async function silentBroker(): Promise<string> {
  const server = createServer((socket) => sockets.push(socket));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A kafkajs client as a user would write it, with few retries so kafkajs' own diagnosis comes within the bound. */
const client = (config: Omit<KafkaConfig, 'clientId'>) =>
  new Kafka({ clientId: 'connect-test', logLevel: logLevel.NOTHING, retry: { retries: 2 }, ...config });

async function startFails(kafka: Kafka, connectTimeoutMs = 10_000): Promise<BrokerUnreachableError> {
  const { knex, outbox } = await fixture.database(2);
  const relay = fixture.relay(outbox, { publisher: createKafkaPublisher({ kafka }), connectTimeoutMs });
  const error = await relay.start().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BrokerUnreachableError);
  // Cleaned up: stopped, and no shard lease or membership taken.
  expect(relay.state).toBe('stopped');
  expect(await knex('eventual.outbox_leases').whereNotNull('owner').count({ n: '*' })).toEqual([{ n: '0' }]);
  const e = error as BrokerUnreachableError;
  expect(e.code).toBe('broker_unreachable');
  expect(e.retriable).toBe(true);
  // The client's own error is kept, except when the bound itself ran out.
  if (e.reason !== 'timeout') expect(e.cause).toBeDefined();
  return e;
}

describe('relay.start() checks the broker within connectTimeoutMs', () => {
  it('names a closed port as refused', async () => {
    const port = await closedPort();
    const e = await startFails(client({ brokers: [`127.0.0.1:${port}`] }));
    expect(e.reason).toBe('refused');
    expect(e.brokers).toEqual([`127.0.0.1:${port}`]);
    expect(e.message).toContain(`127.0.0.1:${port}`);
    expect(e.message).toContain('refused');
  });

  it('names a host that does not resolve as dns', async () => {
    const e = await startFails(client({ brokers: ['no-such-host.invalid:9092'] }));
    expect(e.reason).toBe('dns');
    expect(e.message).toContain('no-such-host.invalid:9092');
  });

  it('names SASL against the plaintext listener as sasl', async () => {
    const brokers = fixture.services.kafkaBrokers;
    const e = await startFails(client({ brokers, sasl: { mechanism: 'plain', username: 'u', password: 'p' } }));
    expect(e.reason).toBe('sasl');
    expect(e.message).toMatch(/check sasl/);
  });

  it('names TLS against the plaintext listener as tls', async () => {
    const brokers = fixture.services.kafkaBrokers;
    const e = await startFails(client({ brokers, ssl: true }));
    expect(e.reason).toBe('tls');
    expect(e.brokers).toEqual(brokers);
  });

  it('gives up on a broker that never answers at the bound, as timeout', async () => {
    const silent = await silentBroker();
    // kafkajs would wait requestTimeout (30 s) per request; the bound cuts it short.
    const e = await startFails(client({ brokers: [silent], retry: { retries: 5 } }), 1_500);
    expect(e.reason).toBe('timeout');
    expect(e.timeoutMs).toBe(1_500);
  });

  it('starts against a good broker and publishes', async () => {
    const { knex, outbox } = await fixture.database(2);
    const relay = fixture.relay(outbox, { connectTimeoutMs: 10_000 });
    await relay.start();
    expect(relay.state).toBe('running');
    await knex.transaction((trx) =>
      outbox.enqueue(trx, { topic: `connect-ok-${Date.now()}`, key: 'k', type: 'T', payload: {} }),
    );
    await expect.poll(async () => (await outbox.stats()).pending, { timeout: 20_000 }).toBe(0);
    expect((await outbox.stats()).dead).toBe(0);
  });

  it('rejects a connectTimeoutMs out of range', async () => {
    const { outbox } = await fixture.database(2);
    expect(() => fixture.relay(outbox, { connectTimeoutMs: 5 })).toThrow(/connectTimeoutMs must be an integer/);
  });
});
