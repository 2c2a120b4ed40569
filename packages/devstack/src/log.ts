/** One line per decision, prefixed so it stands out in test and demo output. */
export function logLine(message: string): void {
  process.stderr.write(`[devstack] ${message}\n`);
}
