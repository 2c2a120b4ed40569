import { errorText, logger } from './log.js';

export interface RunningService {
  /** Shown in the ready line and sent to a parent process (the demo), e.g. the HTTP port. */
  info: Record<string, string | number>;
  stop(): Promise<void>;
}

/** What a service process sends its parent over IPC once it serves. */
export interface ReadyMessage {
  type: 'ready';
  service: string;
  info: Record<string, string | number>;
}

/**
 * The main of a service process: start, report ready (on stdout, and over IPC when
 * the demo forked it), and stop gracefully on SIGTERM/SIGINT, or when the parent that
 * forked it goes away (the IPC channel closes), so no service outlives the demo.
 */
export function runService(service: string, start: () => Promise<RunningService>): void {
  const log = logger(service);
  let running: RunningService | undefined;
  let stopping = false;

  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log(`stopping (${why})`);
    const force = setTimeout(() => {
      log('graceful stop took longer than 15 s; exiting');
      process.exit(1);
    }, 15_000);
    force.unref();
    try {
      await running?.stop();
      log('stopped');
      process.exit(0);
    } catch (error) {
      log(`stop failed: ${errorText(error)}`);
      process.exit(1);
    }
  };

  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  if (process.send) process.on('disconnect', () => void shutdown('parent went away'));
  // A promise nobody handles is a bug: crash loudly (the demo's supervisor or the
  // container's restart policy brings the service back; its state is in its database).
  process.on('unhandledRejection', (error) => {
    log(`unhandled rejection, exiting: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(70);
  });

  start().then(
    (service_) => {
      running = service_;
      const details = Object.entries(service_.info)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      log(`ready ${details}`);
      if (stopping) return void shutdown('stop requested during start');
      const ready: ReadyMessage = { type: 'ready', service, info: service_.info };
      process.send?.(ready);
    },
    (error: unknown) => {
      log(`failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exit(1);
    },
  );
}
