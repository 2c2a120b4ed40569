export {
  asError,
  DatabaseError,
  DatabaseUnavailableError,
  EventualError,
  errorMessage,
  InvalidOptionError,
  sqlStateOf,
} from './errors.js';
export { causeChain, isDatabaseOutage } from './outage.js';
export { type FailedStatement, type Statement, type StatementRunner, statementRunner } from './sql/statement.js';
