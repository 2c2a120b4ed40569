export type Logger = (message: string) => void;

/** One line per event on stdout, prefixed with the service name (the demo keeps a log file per service). */
export function logger(service: string): Logger {
  return (message) => process.stdout.write(`${new Date().toISOString()} [${service}] ${message}\n`);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
