import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTopics, randomTopic } from '@eventual/devstack/testing';
import { describe, expect, it } from 'vitest';
import { appliedTimes, apply, consumerFixture, inboxRows, uniqueName } from './support.js';

const fixture = consumerFixture('crash');
const brokers = fixture.services.kafkaBrokers;
const here = dirname(fileURLToPath(import.meta.url));

/** Runs the crashing consumer in a child process (tsx) and resolves when it died. */
function runCrashingConsumer(
  config: Record<string, unknown>,
): Promise<{ signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures', 'crashing-consumer.ts')], {
    cwd: join(here, '..'),
    env: { ...process.env, CRASH_FIXTURE: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  fixture.defer(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the crashing consumer did not crash within 45 s; its stderr:\n${stderr}`));
    }, 45_000);
    child.on('exit', (_code, signal) => {
      clearTimeout(deadline);
      resolve({ signal, stderr });
    });
  });
}

async function committedOffset(groupId: string, topic: string): Promise<string | undefined> {
  const admin = fixture.services.kafka('admin').admin();
  await admin.connect();
  try {
    const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return entry?.partitions.find((p) => p.partition === 0)?.offset;
  } finally {
    await admin.disconnect();
  }
}

describe('crash recovery', () => {
  it('skips the redelivered record as a duplicate when killed after the DB commit and before the offset commit', async () => {
    const { url, knex, outbox } = await fixture.service();
    const topic = randomTopic('stock');
    await createTopics(brokers, [topic], 1);
    const name = uniqueName('warehouse');
    const [id] = await fixture.produce(topic, [{ key: 'sku-1', type: 'StockReserved', payload: { qty: 3 } }]);
    const probe = await fixture.consumer({ outbox, name: `${name}-migrate`, topics: [topic] }); // migrates the inbox
    await probe.stop();

    const crashed = await runCrashingConsumer({ databaseUrl: url, brokers, topic, name, crash: 'after-commit' });
    expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
    // The database has the effect; Kafka has no committed offset for it.
    expect(await appliedTimes(knex)).toEqual({ [id!]: 1 });
    expect(await committedOffset(name, topic)).toBe('-1');

    const restarted = await fixture.consumer({ outbox, name, topics: [topic] });
    restarted.handle('StockReserved', ({ trx, message }) => apply(trx, message, 'restarted'));
    const duplicates: string[] = [];
    restarted.on('consumer:duplicate', (e) => duplicates.push(e.messageId));
    await restarted.start();

    await expect.poll(() => duplicates, { timeout: 30_000 }).toEqual([id]);
    await expect.poll(() => committedOffset(name, topic), { timeout: 10_000 }).toBe('1');
    expect(restarted.counters.processed).toBe(0);
    expect(await knex('applied').select('message_id', 'times', 'applied_by')).toEqual([
      { message_id: id, times: 1, applied_by: 'child' },
    ]);
  });

  it('handles the record once after a restart when killed before the DB commit', async () => {
    const { url, knex, outbox } = await fixture.service();
    const topic = randomTopic('stock');
    await createTopics(brokers, [topic], 1);
    const name = uniqueName('warehouse');
    const [id] = await fixture.produce(topic, [{ key: 'sku-2', type: 'StockReserved', payload: { qty: 1 } }]);
    const restarted = await fixture.consumer({ outbox, name, topics: [topic] }); // also migrates the inbox

    const crashed = await runCrashingConsumer({ databaseUrl: url, brokers, topic, name, crash: 'before-commit' });
    expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
    expect(await appliedTimes(knex)).toEqual({});
    expect(await inboxRows(knex, restarted)).toEqual([]);

    restarted.handle('StockReserved', ({ trx, message }) => apply(trx, message, 'restarted'));
    await restarted.start();

    await expect.poll(() => restarted.counters.processed, { timeout: 30_000 }).toBe(1);
    await expect.poll(() => committedOffset(name, topic), { timeout: 10_000 }).toBe('1');
    expect(await knex('applied').select('message_id', 'times', 'applied_by')).toEqual([
      { message_id: id, times: 1, applied_by: 'restarted' },
    ]);
    expect(await inboxRows(knex, restarted)).toEqual([
      expect.objectContaining({ message_id: id, state: 'processed', attempts: 1 }),
    ]);
    expect(restarted.counters.duplicates).toBe(0);
  });

  describe('in batch mode', () => {
    const messages = Array.from({ length: 300 }, (_, i) => ({
      key: `sku-${i % 9}`,
      type: 'StockReserved',
      payload: { i },
    }));

    it('redelivers the whole committed batch and skips it when killed between its COMMIT and the offset commit', async () => {
      const { url, knex, outbox } = await fixture.service();
      const topic = randomTopic('stock');
      await createTopics(brokers, [topic], 1);
      const name = uniqueName('warehouse');
      const ids = await fixture.produce(topic, messages);
      const restarted = await fixture.consumer({ outbox, name, topics: [topic], batchSize: 100 }); // migrates

      const crashed = await runCrashingConsumer({
        databaseUrl: url,
        brokers,
        topic,
        name,
        crash: 'after-commit',
        batchSize: 100,
      });
      expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
      // One whole batch committed (the first records, each once), and no offset.
      const first = await appliedTimes(knex);
      const committed = Object.keys(first).length;
      expect(committed).toBeGreaterThan(1);
      expect(committed).toBeLessThanOrEqual(100);
      expect(first).toEqual(Object.fromEntries(ids.slice(0, committed).map((id) => [id, 1])));
      expect(await committedOffset(name, topic)).toBe('-1');

      restarted.handle('StockReserved', ({ trx, message }) => apply(trx, message, 'restarted'));
      await restarted.start();

      await expect
        .poll(() => restarted.counters.processed + restarted.counters.duplicates, { timeout: 30_000 })
        .toBe(300);
      expect(restarted.counters).toMatchObject({ processed: 300 - committed, duplicates: committed });
      expect(await appliedTimes(knex)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
      const by = await knex('applied')
        .select('applied_by')
        .count({ n: '*' })
        .groupBy('applied_by')
        .orderBy('applied_by');
      expect(by).toEqual([
        { applied_by: 'child', n: String(committed) },
        { applied_by: 'restarted', n: String(300 - committed) },
      ]);
      await expect.poll(() => committedOffset(name, topic), { timeout: 10_000 }).toBe('300');
    });

    it('leaves nothing of the batch when killed mid-batch, and applies every record once after a restart', async () => {
      const { url, knex, outbox } = await fixture.service();
      const topic = randomTopic('stock');
      await createTopics(brokers, [topic], 1);
      const name = uniqueName('warehouse');
      const ids = await fixture.produce(topic, messages);
      const restarted = await fixture.consumer({ outbox, name, topics: [topic], batchSize: 100 }); // migrates

      const crashed = await runCrashingConsumer({
        databaseUrl: url,
        brokers,
        topic,
        name,
        crash: 'before-commit',
        crashAtRecord: 50,
        batchSize: 100,
      });
      expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
      // 49 handlers had written in the batch's transaction: all of it is gone.
      expect(await appliedTimes(knex)).toEqual({});
      expect(await inboxRows(knex, restarted)).toEqual([]);

      restarted.handle('StockReserved', ({ trx, message }) => apply(trx, message, 'restarted'));
      await restarted.start();

      await expect.poll(() => restarted.counters.processed, { timeout: 30_000 }).toBe(300);
      expect(restarted.counters.duplicates).toBe(0);
      expect(await appliedTimes(knex)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
      await expect.poll(() => committedOffset(name, topic), { timeout: 10_000 }).toBe('300');
    });
  });
});
