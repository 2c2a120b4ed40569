/**
 * eventual never writes to stdout or stderr on its own: everything it has to say goes
 * through a `Logger`, injected where a component is created (kafkajs' `logCreator`
 * idea, reduced to one function). The default writes warnings and errors to stderr.
 */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** One thing a component has to say, as the `Logger` receives it. */
export interface LogEntry {
  /** How serious it is; `stderrLogger` prints only `error` and `warn`. */
  level: LogLevel;
  /** The component speaking, e.g. `relay`, `consumer`, `scheduler`. */
  namespace: string;
  /** What happened, in one line for a human. */
  message: string;
  /** The error the entry is about, if any (`stderrLogger` prints its stack). */
  error?: Error;
  /** Anything else worth recording (instance id, job, topic...). */
  [field: string]: unknown;
}

/**
 * Where a component's log entries go: one function, given where the component is
 * created. Default `stderrLogger`; `silentLogger` drops everything.
 */
export type Logger = (entry: LogEntry) => void;

/** Warnings and errors to stderr, one line each (plus the error's stack). */
export const stderrLogger: Logger = (entry) => {
  if (entry.level !== 'error' && entry.level !== 'warn') return;
  const stack = entry.error?.stack ? `\n${entry.error.stack}` : '';
  process.stderr.write(`[eventual] ${entry.level} ${entry.namespace}: ${entry.message}${stack}\n`);
};

/** Drops everything. */
export const silentLogger: Logger = () => {};

/** Calls `logger` and never lets a broken logger break the caller. */
export function safeLog(logger: Logger, entry: LogEntry): void {
  try {
    logger(entry);
  } catch {
    // A logger that throws has nowhere left to report to.
  }
}
