import { type ChildProcess, fork } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import type { ReadyMessage } from '../shared/process.js';

export type ServiceName = 'order' | 'payment' | 'warehouse' | 'carrier';

export interface ServiceProcessOptions {
  name: ServiceName;
  /** Absolute path of the service's main.ts. */
  entry: string;
  /** Where `--import tsx` is resolved from: the example's directory. */
  cwd: string;
  env: Record<string, string>;
  logFile: string;
  /** Called when the process exits without being asked to (a crash, not a chaos kill). */
  onUnexpectedExit?: (name: ServiceName, how: string) => void;
  readyTimeoutMs?: number;
}

/**
 * One service as a child process (`node --import tsx main.ts`), restartable: output
 * goes to its log file, readiness comes over IPC, and the demo can stop it gracefully
 * or SIGKILL it the way a crash would.
 */
export class ServiceProcess {
  readonly name: ServiceName;
  info: Record<string, string | number> = {};
  unexpectedExits = 0;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #expectingExit = false;
  #starting: Promise<void> | undefined;
  readonly #log: WriteStream;

  constructor(private readonly o: ServiceProcessOptions) {
    this.name = o.name;
    this.#log = createWriteStream(o.logFile, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Forks the process and resolves once it reported ready (one start at a time). */
  start(): Promise<void> {
    this.#starting ??= this.#start().finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.running) return;
    this.#expectingExit = false;
    const child = fork(this.o.entry, [], {
      cwd: this.o.cwd,
      env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', ...this.o.env },
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Its own process group: a Ctrl-C in the terminal reaches the demo only, which
      // then stops the services itself. If the demo dies, the IPC channel closes and
      // each service stops on its own (see shared/process.ts).
      detached: true,
    });
    this.#child = child;
    this.#log.write(`--- ${new Date().toISOString()} demo: started ${this.name} (pid ${child.pid})\n`);
    child.stdout?.pipe(this.#log, { end: false });
    child.stderr?.pipe(this.#log, { end: false });
    this.#exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
        this.#log.write(`--- ${new Date().toISOString()} demo: ${this.name} (pid ${child.pid}) ${how}\n`);
        if (!this.#expectingExit && this.#child === child) {
          this.unexpectedExits += 1;
          this.o.onUnexpectedExit?.(this.name, how);
        }
        resolve();
      }),
    );
    await new Promise<void>((resolve, reject) => {
      const timeoutMs = this.o.readyTimeoutMs ?? 120_000;
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name} did not report ready within ${timeoutMs} ms (log: ${this.o.logFile})`));
      }, timeoutMs);
      const onMessage = (message: unknown) => {
        const ready = message as ReadyMessage;
        if (ready?.type !== 'ready') return;
        this.info = ready.info;
        cleanup();
        resolve();
      };
      const onExit = () => {
        cleanup();
        reject(new Error(`${this.name} exited during start:\n${this.tail()}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  }

  /** SIGKILL, as a crash: no graceful stop, no cleanup in the process. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.#expectingExit = true;
    this.#child!.kill('SIGKILL');
    await this.#exited;
  }

  /** SIGTERM (graceful stop), then SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return this.#exited;
    this.#expectingExit = true;
    const child = this.#child!;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Forced, synchronous: for process exit handlers that cannot wait. */
  killNow(): void {
    if (!this.running) return;
    this.#expectingExit = true;
    this.#child!.kill('SIGKILL');
  }

  async closeLog(): Promise<void> {
    await new Promise<void>((resolve) => this.#log.end(resolve));
  }

  /** The last lines of the log, for error messages. */
  tail(lines = 30): string {
    try {
      return readFileSync(this.o.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}
