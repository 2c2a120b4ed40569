import { execFile } from 'node:child_process';
import { cpus, release, totalmem, type } from 'node:os';
import { promisify } from 'node:util';
import type { Devstack } from '@eventual/devstack';
import pg from 'pg';
import type { Machine } from './harness.js';

const run = promisify(execFile);

/** What the figures were measured on: hardware, runtimes and the services' versions. */
export async function describeMachine(services: Devstack): Promise<Machine> {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    ramGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    os: `${type()} ${release()}`,
    node: process.version,
    java: await javaVersion(),
    postgres: await postgresVersion(services.adminDatabaseUrl),
    kafka: services.kafkaVersion,
    devstackProvider: services.provider,
  };
}

async function javaVersion(): Promise<string> {
  try {
    const java = process.env.JAVA_HOME ? `${process.env.JAVA_HOME}/bin/java` : 'java';
    const { stderr } = await run(java, ['-version']);
    const runtime = stderr.split('\n').find((l) => l.includes('Runtime Environment'));
    return (runtime ?? stderr.split('\n')[0] ?? 'unknown').trim();
  } catch {
    return 'not found (external broker)';
  }
}

async function postgresVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; setting: string }>(
      `select name, setting from pg_settings where name in ('server_version', 'fsync', 'synchronous_commit', 'full_page_writes')`,
    );
    const setting = (name: string) => rows.find((r) => r.name === name)?.setting ?? 'unknown';
    // Commit-bound figures depend on these: a run without fsync flatters every one of them.
    const durable = setting('fsync') === 'on' && setting('synchronous_commit') === 'on';
    return (
      `PostgreSQL ${setting('server_version')}, ${durable ? 'durable' : 'NOT durable'} ` +
      `(fsync ${setting('fsync')}, synchronous_commit ${setting('synchronous_commit')}, full_page_writes ${setting('full_page_writes')})`
    );
  } finally {
    await client.end();
  }
}

export async function gitCommit(): Promise<string> {
  try {
    const { stdout } = await run('git', ['rev-parse', '--short', 'HEAD']);
    return stdout.trim();
  } catch {
    return 'unknown';
  }
}
