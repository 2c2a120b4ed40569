import { statementRunner } from '@eventual/outbox/internal';
import { translateDatabaseError } from '../errors.js';

export type { Statement } from '@eventual/outbox/internal';

/** Runs a statement and returns its rows; the one place the consumer translates driver errors. */
export const run = statementRunner(translateDatabaseError);
