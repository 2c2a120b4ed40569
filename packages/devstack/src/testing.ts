import { inject } from 'vitest';
import { createDatabase } from './database.js';

/** The services the vitest globalSetup started, as seen from a test file. */
export function testServices() {
  const devstack = inject('devstack');
  return {
    ...devstack,
    /** A fresh database for this test file; its name starts with `prefix`. */
    createDatabase: (prefix = 'test') => createDatabase(devstack.adminDatabaseUrl, prefix),
  };
}
