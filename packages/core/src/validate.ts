import type { BackoffPolicy } from './backoff.js';
import { InvalidOptionError } from './errors.js';
import { type Logger, stderrLogger } from './logger.js';

// Option rules shared by every eventual package, so a name or number one package
// accepts, the others accept too. Each throws an InvalidOptionError that names the
// option and says what to change.

/**
 * `value` if it is an integer from `min` to `max` (default `Number.MAX_SAFE_INTEGER`);
 * otherwise throws `InvalidOptionError` naming `option`.
 */
export function integer(option: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(
      `${option} must be an integer between ${min} and ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** `value` if it is a number from 0 to 1; otherwise throws `InvalidOptionError` naming `option`. */
export function fraction(option: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new InvalidOptionError(`${option} must be a number between 0 and 1, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** `value` if it is one of `allowed`; otherwise throws `InvalidOptionError` naming `option` and listing them. */
export function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new InvalidOptionError(
      `${option} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
  return value as T;
}

/**
 * `value` if it is a string of 1 to `maxLength` characters (default 200); otherwise
 * throws `InvalidOptionError` naming `option`.
 */
export function nonEmptyString(option: string, value: unknown, maxLength = 200): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw new InvalidOptionError(
      `${option} must be a non-empty string of at most ${maxLength} characters, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** `value` if it is `true` or `false`; otherwise throws `InvalidOptionError` naming `option`. */
export function bool(option: string, value: unknown): boolean {
  if (typeof value !== 'boolean')
    throw new InvalidOptionError(`${option} must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * `value` if it is a function (its parameters cannot be checked); otherwise throws
 * `InvalidOptionError` asking for `shape`, e.g. `(trx, message) => Promise<void>`.
 */
export function func<F extends (...args: never[]) => unknown>(option: string, value: unknown, shape: string): F {
  if (typeof value !== 'function') throw new InvalidOptionError(`${option} must be a function ${shape}`);
  return value as F;
}

/**
 * The options object a factory was given, with only the keys it knows: `createX needs
 * an options object { ... }` for anything else, naming what it needs (`needs`).
 */
export function optionsObject(factory: string, value: unknown, allowed: readonly string[], needs: string): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new InvalidOptionError(`${factory} needs an options object ${needs}`);
  knownKeys(factory, value, allowed);
}

/** Rejects option keys the resolver does not know, so a typo is not silently ignored. */
export function knownKeys(what: string, options: object, allowed: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new InvalidOptionError(`${what} has no option '${key}'; known options: ${allowed.join(', ')}`);
    }
  }
}

/** `value` if it is an object, not null and not an array; otherwise throws `InvalidOptionError` naming `option`. */
export function object(option: string, value: unknown): object {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError(`${option} must be an object, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A backoff as a user gives it: a key left out takes the default of the option it belongs to. */
export interface BackoffOptions {
  /** Delay of attempt 1, in ms: an integer from 1 to 86 400 000 (a day). */
  initialMs?: number;
  /** Cap on any delay, in ms: an integer from 1 to 86 400 000, at least `initialMs`. */
  maxMs?: number;
  /** How many times longer each further attempt waits: a number from 1 to 10. */
  factor?: number;
  /** The fraction of each delay that is random: 0 (none) to 1 (anywhere from 0 to the delay). */
  jitter?: number;
}

/** A backoff policy from partial options and defaults, checked as a whole. */
export function backoff(option: string, value: BackoffOptions | undefined, defaults: BackoffPolicy): BackoffPolicy {
  const given = (value === undefined ? {} : object(option, value)) as BackoffOptions;
  knownKeys(option, given, ['initialMs', 'maxMs', 'factor', 'jitter']);
  const policy = {
    initialMs: integer(`${option}.initialMs`, given.initialMs ?? defaults.initialMs, 1, 86_400_000),
    maxMs: integer(`${option}.maxMs`, given.maxMs ?? defaults.maxMs, 1, 86_400_000),
    factor: given.factor ?? defaults.factor,
    jitter: fraction(`${option}.jitter`, given.jitter ?? defaults.jitter),
  };
  if (typeof policy.factor !== 'number' || !(policy.factor >= 1 && policy.factor <= 10)) {
    throw new InvalidOptionError(
      `${option}.factor must be a number between 1 and 10, got ${JSON.stringify(policy.factor)}`,
    );
  }
  if (policy.maxMs < policy.initialMs) {
    throw new InvalidOptionError(
      `${option}.maxMs (${policy.maxMs}) must be >= ${option}.initialMs (${policy.initialMs})`,
    );
  }
  return policy;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID in its 8-4-4-4-12 hex form, of any version, in either case. */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** A `logger` option: the function given, or warnings and errors to stderr when absent. */
export function loggerOption(option: string, value: unknown): Logger {
  if (value === undefined) return stderrLogger;
  if (typeof value !== 'function')
    throw new InvalidOptionError(`${option} must be a function (entry: { level, namespace, message, error? }) => void`);
  return value as Logger;
}
