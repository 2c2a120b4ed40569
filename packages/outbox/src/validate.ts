import { InvalidOptionError } from './errors.js';

/** Names that reach SQL as identifiers: lower-case, start with a letter, fit in 40 chars. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,39}$/;

export function identifier(option: string, value: unknown): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new InvalidOptionError(
      `${option} must be a lower-case SQL identifier matching ${IDENTIFIER} (letters, digits, underscore), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

export function integer(option: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(
      `${option} must be an integer between ${min} and ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

export function fraction(option: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new InvalidOptionError(`${option} must be a number between 0 and 1, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new InvalidOptionError(
      `${option} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`,
    );
  }
  return value as T;
}

export function nonEmptyString(option: string, value: unknown, maxLength = 200): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw new InvalidOptionError(
      `${option} must be a non-empty string of at most ${maxLength} characters, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Rejects option keys the resolver does not know, so a typo is not silently ignored. */
export function knownKeys(what: string, options: object, allowed: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new InvalidOptionError(`${what} has no option '${key}'; known options: ${allowed.join(', ')}`);
    }
  }
}

export function isKnex(value: unknown): boolean {
  return (
    typeof value === 'function' &&
    typeof (value as { raw?: unknown }).raw === 'function' &&
    'client' in (value as object)
  );
}
