import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    // One real PostgreSQL server and Kafka broker for the run; each test file makes
    // its own database and random topic names, so files can run in parallel.
    globalSetup: ['./packages/devstack/src/vitest-setup.ts'],
    // Forks, not threads: fault tests kill child processes and kafkajs keeps sockets.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.vitest-results.json' }]] : ['default'],
  },
});
