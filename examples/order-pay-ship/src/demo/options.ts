import { parseArgs } from 'node:util';
import type { DemoOptions } from './run.js';

export const USAGE = `usage: pnpm demo [-- options]

  --orders N           orders to place (default 200)
  --concurrency C      orders in flight at once (default 16)
  --chaos              SIGKILL order, payment or warehouse at random during the run, restart them
  --chaos-interval MS  time between kills (default 4000)
  --seed S             seeds balances, the order mix, chaos victims and carrier faults (default 1)
  --timeout S          seconds to wait for every order to settle (default 300)
  --keep-logs          keep the services' logs even if everything went well
  -h, --help

PostgreSQL and Kafka: DATABASE_URL and KAFKA_BROKERS if set, else started locally
(see the repository README). Exit code 0 only if every invariant holds.`;

export class UsageError extends Error {
  override name = 'UsageError';
}

function positive(name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${value}'`);
  return n;
}

/** Parses the demo's command line; `--` (as pnpm passes it along) is ignored. */
export function parseDemoArgs(argv: string[]): DemoOptions | 'help' {
  const { values } = parseArgs({
    args: argv.filter((a) => a !== '--'),
    options: {
      orders: { type: 'string' },
      concurrency: { type: 'string' },
      chaos: { type: 'boolean' },
      'chaos-interval': { type: 'string' },
      seed: { type: 'string' },
      timeout: { type: 'string' },
      'keep-logs': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const interval = positive('chaos-interval', values['chaos-interval'], 500);
  const timeout = positive('timeout', values.timeout);
  const options: DemoOptions = {};
  const orders = positive('orders', values.orders);
  const concurrency = positive('concurrency', values.concurrency);
  const seed = positive('seed', values.seed, 0);
  if (orders !== undefined) options.orders = orders;
  if (concurrency !== undefined) options.concurrency = concurrency;
  if (seed !== undefined) options.seed = seed;
  if (timeout !== undefined) options.settleTimeoutMs = timeout * 1000;
  if (values.chaos || interval !== undefined) options.chaos = interval === undefined ? true : { intervalMs: interval };
  if (values['keep-logs']) options.keepLogs = true;
  return options;
}
