import { randomUUID } from 'node:crypto';
import { InvalidOptionError, integer, knownKeys, nonEmptyString, object, oneOf } from '@eventual/core';
import type { AcquireOptions, LockMode } from './types.js';

/** The longest lock name, in characters (the same for every backend: a ZooKeeper path, a Redis key). */
export const MAX_LOCK_NAME = 255;

/** An acquire's options with defaults applied, as every backend gets them. */
export interface ResolvedAcquire {
  name: string;
  ttlMs: number;
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
  mode: LockMode;
  owner: string;
  requestId: string;
}

const KNOWN = ['ttlMs', 'timeoutMs', 'signal', 'mode', 'owner', 'requestId'];

/**
 * Checks a lock name and acquire options before anything reaches a backend, so bad
 * input changes nothing: `InvalidOptionError` naming what to change.
 */
export function resolveAcquire(verb: 'acquire' | 'tryAcquire', name: unknown, options: unknown): ResolvedAcquire {
  const lock = nonEmptyString(`${verb}(name)`, name, MAX_LOCK_NAME);
  const given = object(`${verb}('${lock}', options)`, options) as AcquireOptions;
  knownKeys(`${verb}('${lock}', options)`, given, KNOWN);
  const signal = given.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal))
    throw new InvalidOptionError(`${verb}('${lock}').signal must be an AbortSignal`);
  return {
    name: lock,
    ttlMs: integer(`${verb}('${lock}').ttlMs`, given.ttlMs, 1, 86_400_000),
    timeoutMs: given.timeoutMs === undefined ? undefined : integer(`${verb}('${lock}').timeoutMs`, given.timeoutMs, 0),
    signal,
    mode: oneOf(`${verb}('${lock}').mode`, given.mode ?? 'exclusive', ['exclusive', 'shared'] as const),
    owner: given.owner === undefined ? randomUUID() : nonEmptyString(`${verb}('${lock}').owner`, given.owner),
    requestId:
      given.requestId === undefined ? randomUUID() : nonEmptyString(`${verb}('${lock}').requestId`, given.requestId),
  };
}
