import { statementRunner } from '@eventual/core';
import { translateParticipantLogError, translateSagaStoreError } from '../errors.js';

export type { Statement } from '@eventual/core';

/** Runs a saga store statement; the one place the orchestrator translates driver errors. */
export const runSagaStatement = statementRunner(translateSagaStoreError);

/** Runs a participant log statement; the one place the participant translates driver errors. */
export const runParticipantStatement = statementRunner(translateParticipantLogError);
