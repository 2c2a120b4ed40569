export {
  LockAbortedError,
  LockLostError,
  LockModeError,
  LockNotHeldError,
  LockTimeoutError,
} from './errors.js';
export { MAX_LOCK_NAME } from './options.js';
export { createPostgresLock, type PostgresLockHandle, type PostgresLockManager } from './postgres/lock.js';
export { lockMigrations } from './postgres/migrations.js';
export type { PostgresLockOptions } from './postgres/options.js';
export type { AcquireOptions, LockEventMap, LockHandle, LockManager, LockMode } from './types.js';
