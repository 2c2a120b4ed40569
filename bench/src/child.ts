import { type ChildProcess, fork } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Diagnostics } from './processes/diagnostics.js';
import type { ChildMessage, ParentMessage } from './processes/protocol.js';

interface Waiter {
  type: ChildMessage['type'];
  resolve(message: ChildMessage): void;
  reject(error: Error): void;
}

const SCRIPT = fileURLToPath(new URL('./processes/outbox-process.ts', import.meta.url));

/**
 * A child `outbox-process` run directly by node with the tsx loader (not through the
 * tsx CLI, which would put a wrapper process between us and the one we measure).
 */
export class OutboxProcess {
  readonly #child: ChildProcess;
  readonly #waiters = new Set<Waiter>();
  readonly #listeners = new Set<(m: ChildMessage) => void>();
  readonly #exit: Promise<void>;
  #failure: Error | undefined;
  #stopping = false;
  #rejectFailed: (error: Error) => void = () => {};
  /** Rejects when the child reports an error or exits unasked; never resolves. */
  readonly failed: Promise<never>;

  constructor(
    readonly label: string,
    log: (message: string) => void,
  ) {
    this.#child = fork(SCRIPT, [], {
      // BENCH_CHILD_EXEC_ARGV profiles the children, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
      execArgv: ['--import', 'tsx', ...(process.env.BENCH_CHILD_EXEC_ARGV?.split(' ').filter(Boolean) ?? [])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#exit = new Promise((resolve) => this.#child.once('exit', () => resolve()));
    this.failed = new Promise<never>((_, reject) => {
      this.#rejectFailed = reject;
    });
    this.failed.catch(() => {});
    this.#child.on('message', (message: ChildMessage) => {
      if (message.type === 'log') log(`${label}: ${message.message}`);
      if (message.type === 'error') this.#fail(new Error(`${label} failed: ${message.message}`));
      for (const listener of this.#listeners) listener(message);
      for (const waiter of this.#waiters) {
        if (waiter.type !== message.type) continue;
        this.#waiters.delete(waiter);
        waiter.resolve(message);
      }
    });
    this.#child.once('exit', (code, signal) => {
      if (!this.#stopping || code !== 0) this.#fail(new Error(`${label} exited with code ${code}, signal ${signal}`));
    });
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  send(message: ParentMessage): void {
    this.#child.send(message);
  }

  on(listener: (message: ChildMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The next message of this type, failing after `timeoutMs` or as soon as the child fails. */
  next<T extends ChildMessage['type']>(type: T, timeoutMs: number): Promise<Extract<ChildMessage, { type: T }>> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        type,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as Extract<ChildMessage, { type: T }>);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`${this.label}: no '${type}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#rejectFailed(error);
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters.clear();
  }

  /** The child's CPU, event loop, PostgreSQL and Kafka profile since `start`. */
  async report(): Promise<Diagnostics> {
    const reply = this.next('report', 10_000);
    this.send({ type: 'report' });
    return (await reply).diagnostics;
  }

  /** Peak and current resident set size in MiB, from /proc/<pid>/status (Linux). */
  async memory(): Promise<{ peakRssMiB: number; rssMiB: number }> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    const kib = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] ?? Number.NaN);
    return { peakRssMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
  }

  /** Asks the child to stop gracefully; kills it if it does not within `timeoutMs`. */
  async stop(timeoutMs = 60_000): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#stopping = true;
    if (this.#child.connected) this.send({ type: 'stop' });
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), timeoutMs);
    await this.#exit;
    clearTimeout(timer);
  }

  kill(): void {
    this.#stopping = true;
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}

/**
 * Peak RSS of a child that loads the same modules as the measured ones (outbox, relay,
 * consumer) and does nothing else: the memory figures' baseline.
 */
export async function idleRss(log: (message: string) => void): Promise<number> {
  const child = new OutboxProcess('idle', log);
  try {
    child.send({ type: 'init', mode: 'idle' });
    await child.next('ready', 60_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const { peakRssMiB } = await child.memory();
    await child.stop();
    return peakRssMiB;
  } finally {
    child.kill();
  }
}
