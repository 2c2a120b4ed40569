import { statementRunner } from '@eventual/core';
import { translateOutboxError } from '../errors.js';

export type { Statement, StatementRunner } from '@eventual/core';
export { statementRunner } from '@eventual/core';

/** Runs a statement and returns its rows; the one place the outbox translates driver errors. */
export const run = statementRunner(translateOutboxError);
