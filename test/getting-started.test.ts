import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitUntil } from '@eventual/devstack';
import { testServices } from '@eventual/devstack/testing';
import { Kafka, logLevel } from 'kafkajs';
import knex from 'knex';
import { afterAll, expect, it } from 'vitest';

/**
 * Follows docs/getting-started.md as a new user would, in a fresh directory outside
 * the repository: the blocks the page marks `<!-- getting-started: setup | service |
 * run -->` are read from the page itself, so the page cannot drift from what works.
 * The page's first step (clone and `pnpm install`) is this checkout: a link named
 * `eventual` next to the project stands in for the clone.
 */
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const page = readFileSync(join(repo, 'docs', 'getting-started.md'), 'utf8');

function markedBlock(name: string): string {
  const match = new RegExp(`<!-- getting-started: ${name} -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\\n\`\`\``).exec(page);
  if (!match) throw new Error(`docs/getting-started.md has no block marked <!-- getting-started: ${name} -->`);
  return match[1]!;
}

const services = testServices();
const scratch = mkdtempSync(join(tmpdir(), 'getting-started-'));
chmodSync(scratch, 0o755);
let service: ChildProcess | undefined;
const databaseUrl = await services.createDatabase('getting_started');
const db = knex({ client: 'pg', connection: databaseUrl, pool: { min: 0, max: 2 } });
afterAll(async () => {
  if (service?.exitCode === null) service.kill('SIGKILL');
  await db.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

it('the getting-started page, followed in a fresh directory, consumes a first message', async () => {
  symlinkSync(repo, join(scratch, 'eventual'));
  // `pnpm` as the page says; where pnpm is not installed, the npx form the page gives.
  const bin = join(scratch, '.bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'pnpm'), '#!/bin/sh\nexec npx -y pnpm@10 "$@"\n', { mode: 0o755 });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    // The packages are in the store already (this checkout installed them): no need to ask the registry.
    npm_config_prefer_offline: 'true',
  };
  delete env.POD_NAME;
  execFileSync('bash', ['-euo', 'pipefail', '-c', markedBlock('setup')], { cwd: scratch, env, stdio: 'pipe' });

  const code = markedBlock('service');
  const fileName = /^\/\/ (\S+\.ts)\n/.exec(code)?.[1];
  expect(fileName, 'the service block starts with a // <file>.ts line').toBeDefined();
  const project = join(scratch, 'billing');
  writeFileSync(join(project, fileName!), code);
  // What `pnpm -s devstack up > ../billing/.env` writes, pointing at this run's services.
  writeFileSync(
    join(project, '.env'),
    `DATABASE_URL=${databaseUrl}\nKAFKA_BROKERS=${services.kafkaBrokers.join(',')}\n`,
  );

  const proc = spawn('bash', ['-c', `exec ${markedBlock('run')}`], {
    cwd: project,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  service = proc;
  let output = '';
  proc.stdout.on('data', (chunk) => {
    output += String(chunk);
  });
  proc.stderr.on('data', (chunk) => {
    output += String(chunk);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (status) => resolve(status)));

  const orderId = await waitUntil(
    'the service to place its order',
    async () => {
      if (proc.exitCode !== null) throw new Error(`the service exited with ${proc.exitCode}:\n${output}`);
      return /placed order (\S+)/.exec(output)?.[1];
    },
    { timeoutMs: 45_000, intervalMs: 100 },
  );
  const charge = await waitUntil(
    `order ${orderId} to be charged`,
    async () => {
      if (proc.exitCode !== null) throw new Error(`the service exited with ${proc.exitCode}:\n${output}`);
      return db('charges').where({ order_id: orderId }).first();
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  expect(charge).toEqual({ order_id: orderId, amount: 250 });
  // The handler's own message committed with the charge.
  const emitted = await db('eventual.outbox').where({ topic: 'billing.charges', key: orderId });
  expect(emitted).toHaveLength(1);
  expect(output).toContain(`charged order ${orderId}: 250`);
  // The page's topics were created at start as it declares them.
  const admin = new Kafka({ brokers: services.kafkaBrokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: ['orders', 'orders.dlq', 'billing.charges'] });
    expect(Object.fromEntries(topics.map((t) => [t.name, t.partitions.length]))).toEqual({
      orders: 3,
      'orders.dlq': 1,
      'billing.charges': 3,
    });
  } finally {
    await admin.disconnect();
  }

  proc.kill('SIGTERM'); // the page's shutdown: service.stop(), then the pool
  expect(await exited).toBe(0);
});
