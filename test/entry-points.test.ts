import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

/**
 * Every export of every package loads in a plain Node.js process, not only under vitest.
 * vitest's module interop forgives a named import of a CommonJS export that Node's own
 * ESM loader cannot see (kafkajs's `ConfigResourceTypes` once killed every relay and
 * consumer child process at load while the in-process tests stayed green).
 */
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

const entries = readdirSync(join(repo, 'packages')).flatMap((dir) => {
  const manifest = JSON.parse(readFileSync(join(repo, 'packages', dir, 'package.json'), 'utf8')) as {
    name: string;
    exports: Record<string, string>;
  };
  return Object.entries(manifest.exports).map(([subpath, file]) => ({
    name: `${manifest.name}${subpath.slice(1)}`,
    url: pathToFileURL(join(repo, 'packages', dir, file)).href,
  }));
});

it('finds the packages to check', () => {
  expect(entries.map((e) => e.name)).toEqual(
    expect.arrayContaining([
      '@eventual/core',
      '@eventual/outbox',
      '@eventual/consumer',
      '@eventual/service',
      '@eventual/lock',
    ]),
  );
});

it.each(entries)('$name loads under plain node', async ({ url }) => {
  const script = `const m = await import(${JSON.stringify(url)}); console.log(Object.keys(m).length);`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repo,
    timeout: 30_000,
  });
  expect(Number(stdout.trim())).toBeGreaterThan(0);
});
