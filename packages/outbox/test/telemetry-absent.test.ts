import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { HEADER } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('otel_absent');
const run = promisify(execFile);
const fixtureFile = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe('without @opentelemetry/api installed', () => {
  it('enqueues as usual and writes no trace headers', async () => {
    const { url } = await fixture.database();
    const { stdout } = await run(
      process.execPath,
      ['--require', fixtureFile('hide-opentelemetry.cjs'), '--import', 'tsx', fixtureFile('enqueue-untraced.ts'), url],
      { timeout: 30_000 },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    // The package really is out of reach in that process...
    expect(result.api).toBe('MODULE_NOT_FOUND');
    // ...and the message went in whole, with its standard headers and no trace context.
    expect(result.row.state).toBe('pending');
    expect(Object.keys(result.row.headers).sort()).toEqual(
      [HEADER.causationId, HEADER.correlationId, HEADER.id, HEADER.type].sort(),
    );
    expect(result.headers).toEqual(result.row.headers);
  });
});
