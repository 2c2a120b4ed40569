import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCommandLine } from '../src/cli.js';
import { waitUntil } from '../src/wait.js';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const manifest = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { bin: Record<string, string> };
const bin = join(packageDir, manifest.bin['eventual-devstack']!);

describe('the command line', () => {
  it('reads up with its options, and help', () => {
    expect(parseCommandLine(['up'])).toEqual({ command: 'up', postgresPort: 54320, kafkaPort: 19092, durable: false });
    expect(parseCommandLine(['up', '--postgres-port', '0', '--kafka-port', '29092', '--durable'])).toEqual({
      command: 'up',
      postgresPort: 0,
      kafkaPort: 29092,
      durable: true,
    });
    expect(parseCommandLine(['--help'])).toEqual({ command: 'help' });
  });

  it('refuses what it cannot act on, saying what to change', () => {
    expect(() => parseCommandLine([])).toThrow(/no command given: the command is `up`/);
    expect(() => parseCommandLine(['down'])).toThrow(/unknown command 'down'/);
    expect(() => parseCommandLine(['up', '--postgres-port', '99999'])).toThrow(/--postgres-port must be a port number/);
    expect(() => parseCommandLine(['up', '--kafka-port', '-1'])).toThrow(/--kafka-port/);
    expect(() => parseCommandLine(['up', '--verbose'])).toThrow(/verbose/);
  });
});

/** Every process below `pid`, read from ps (postgres may run under `su` as a grandchild). */
function descendants(pid: number): number[] {
  const table = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number))
    .filter((cols) => cols.length === 2);
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const [child, ppid] of table)
      if (ppid === parent && child !== undefined) {
        found.push(child);
        walk(child);
      }
  };
  walk(pid);
  return found;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

describe('eventual-devstack up, run as a user runs it', () => {
  // Its own temp directory: what it leaves behind there is what it failed to clean up.
  const scratch = mkdtempSync(join(tmpdir(), 'devstack-cli-test-'));
  chmodSync(scratch, 0o755); // as root, the postgres user must enter it
  let child: ChildProcess | undefined;
  afterAll(() => {
    if (child?.exitCode === null) child.kill('SIGKILL');
    rmSync(scratch, { recursive: true, force: true });
  });

  it('prints DATABASE_URL and KAFKA_BROKERS that work, and stops everything on SIGINT', async () => {
    // Free ports (0), so it never collides with the test run's own devstack or a user's.
    const proc = spawn(process.execPath, [bin, 'up', '--postgres-port', '0', '--kafka-port', '0'], {
      env: { ...process.env, TMPDIR: scratch, DATABASE_URL: '', KAFKA_BROKERS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk) => {
      stdout += String(chunk);
    });
    proc.stderr.on('data', (chunk) => {
      stderr += String(chunk);
    });
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));

    const env = await waitUntil(
      'the CLI to print DATABASE_URL and KAFKA_BROKERS',
      async () => {
        if (proc.exitCode !== null) throw new Error(`the CLI exited with ${proc.exitCode}: ${stderr}`);
        const vars = Object.fromEntries(
          stdout
            .split('\n')
            .filter((l) => l.includes('='))
            .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
        );
        return vars.DATABASE_URL && vars.KAFKA_BROKERS ? vars : undefined;
      },
      { timeoutMs: 110_000, intervalMs: 100 },
    );
    // stdout holds the two variables and nothing else, so `> .env` works.
    expect(stdout.trim().split('\n')).toHaveLength(2);
    expect(stderr).toMatch(/Ctrl-C stops both/);

    const client = new pg.Client({ connectionString: env.DATABASE_URL });
    await client.connect();
    expect((await client.query<{ answer: number }>('select 40 + 2 as answer')).rows[0]!.answer).toBe(42);
    await client.end();

    const brokers = env.KAFKA_BROKERS!.split(',');
    const kafka = new Kafka({ clientId: 'cli-test', brokers, logLevel: logLevel.NOTHING });
    const topic = `cli-${randomUUID()}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'k', value: 'hello' }] });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId: `cli-${randomUUID()}`, maxWaitTimeInMs: 100 });
    const seen: string[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(String(message.value));
      },
    });
    await waitUntil('the record to be consumed', async () => (seen.length > 0 ? seen : undefined), {
      timeoutMs: 30_000,
    });
    await consumer.disconnect();
    expect(seen).toEqual(['hello']);

    const pids = descendants(proc.pid!);
    expect(pids.length).toBeGreaterThanOrEqual(2); // java and postgres, at least
    const ports = [new URL(env.DATABASE_URL!).port, brokers[0]!.split(':')[1]].map(Number);

    proc.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/SIGINT: stopping Kafka and PostgreSQL/);
    for (const port of ports) expect(await portOpen(port)).toBe(false);
    // The watchdogs notice within a second that their parent is gone and exit too.
    await waitUntil('every process it started to be gone', async () => (pids.some(alive) ? undefined : true), {
      timeoutMs: 15_000,
    });
    const leftovers = readdirSync(scratch).filter((name) => /^eventual-(pg|kafka|devstack)-/.test(name));
    expect(leftovers).toEqual([]);
  });
});
