import { statementRunner } from '@eventual/core';
import { translateInboxError } from '../errors.js';

export type { Statement } from '@eventual/core';

/** Runs a statement and returns its rows; the one place the consumer translates driver errors. */
export const run = statementRunner(translateInboxError);
