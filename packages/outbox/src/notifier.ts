import { errorMessage, safeLog } from '@eventual/core';
import type { Knex } from 'knex';
import type { ResolvedOutboxOptions } from './options.js';
import { notifyShards } from './sql/enqueue.js';
import { run } from './sql/statement.js';

/**
 * Sends the relays' wake-up NOTIFY after the enqueueing transaction commits, instead of
 * inside it (see sql/enqueue.ts for the lock a NOTIFY costs the caller's commit):
 * - one NOTIFY per transaction at most, however many messages and enqueue calls it
 *   had: the shards are collected per transaction (keyed by knex's executionPromise,
 *   which settles when the outermost COMMIT or ROLLBACK does);
 * - only on commit: a rolled-back transaction's shards are dropped;
 * - coalesced: while one NOTIFY is in flight, the shards of the transactions that
 *   commit meanwhile wait and go out together in the next, so under load there are
 *   fewer NOTIFYs than transactions.
 * It is a latency hint: a NOTIFY that fails (or a process that dies before sending it)
 * delays the relay until its next poll, and is logged as a warning.
 */
export class CommitNotifier {
  readonly #o: ResolvedOutboxOptions;
  readonly #byTransaction = new WeakMap<PromiseLike<unknown>, Set<number>>();
  readonly #due = new Set<number>();
  #sending = false;

  constructor(o: ResolvedOutboxOptions) {
    this.#o = o;
  }

  /**
   * Notes that `trx` wrote these shards. Returns false when the transaction's outcome
   * cannot be observed (no executionPromise): the insert must then NOTIFY itself.
   */
  afterCommit(trx: Knex.Transaction, shards: number[]): boolean {
    const outcome = outcomeOf(trx);
    if (!outcome) return false;
    let written = this.#byTransaction.get(outcome);
    if (!written) {
      const shardsOfTransaction = new Set<number>();
      written = shardsOfTransaction;
      this.#byTransaction.set(outcome, written);
      outcome.then(
        () => this.#send(shardsOfTransaction),
        () => {}, // rolled back (the caller sees that rejection through its own handle)
      );
    }
    for (const shard of shards) written.add(shard);
    return true;
  }

  /** Whether `trx`'s outcome can be observed, i.e. whether `afterCommit` will take it. */
  canNotifyAfterCommit(trx: Knex.Transaction): boolean {
    return outcomeOf(trx) !== undefined;
  }

  #send(shards: Set<number>): void {
    for (const shard of shards) this.#due.add(shard);
    if (this.#sending || this.#due.size === 0) return;
    this.#sending = true;
    void this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#due.size > 0) {
        const shards = [...this.#due].sort((a, b) => a - b);
        this.#due.clear();
        try {
          await run(this.#o.knex, notifyShards(this.#o, shards));
        } catch (error) {
          safeLog(this.#o.logger, {
            level: 'warn',
            namespace: 'outbox',
            message: `could not NOTIFY the relays after a commit (they find the messages at their next poll): ${errorMessage(error)}`,
            error: error instanceof Error ? error : undefined,
          });
        }
      }
    } finally {
      this.#sending = false;
    }
  }
}

/**
 * The promise that settles with the outermost transaction: a savepoint's own settles at
 * RELEASE, while the outer transaction may still roll back.
 */
function outcomeOf(trx: Knex.Transaction): PromiseLike<unknown> | undefined {
  let root = trx as Knex.Transaction & { parentTransaction?: Knex.Transaction };
  for (let hops = 0; root.parentTransaction && hops < 100; hops++) root = root.parentTransaction;
  const outcome = (root as { executionPromise?: unknown }).executionPromise;
  return outcome && typeof (outcome as PromiseLike<unknown>).then === 'function'
    ? (outcome as PromiseLike<unknown>)
    : undefined;
}
