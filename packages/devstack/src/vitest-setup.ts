import type { TestProject } from 'vitest/node';
import { startDevstack } from './index.js';
import './provided-context.js';

/**
 * vitest globalSetup: one PostgreSQL server and one Kafka broker for the whole run,
 * handed to test files through `inject('devstack')`. If they cannot be provided the
 * run fails here: no test silently skips for want of a service. When any test
 * failed, the services' log is kept and its path printed.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const devstack = await startDevstack();
  project.provide('devstack', {
    adminDatabaseUrl: devstack.adminDatabaseUrl,
    kafkaBrokers: devstack.kafkaBrokers,
    provider: devstack.provider,
  });
  return async () => {
    const failed = project.vitest.state.getCountOfFailedTests() > 0;
    await devstack.stop({ keepLog: failed });
  };
}
