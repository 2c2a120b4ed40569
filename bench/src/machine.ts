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
    const { rows } = await client.query<{ server_version: string }>('show server_version');
    return `PostgreSQL ${rows[0]?.server_version ?? 'unknown'}`;
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
