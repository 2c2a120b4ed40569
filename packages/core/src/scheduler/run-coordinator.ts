import type { Knex } from 'knex';
import type { RunCoordinator } from 'node-cron';
import { claimRun, finishRun } from '../sql/runs.js';
import { statementRunner } from '../sql/statement.js';

/** node-cron keys a run as `<task name>:<scheduled time ISO>`. */
const KEY = /^(.+):(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)$/;
const run = statementRunner();

/** node-cron's `RunCoordinator`, plus the fencing token of a run in progress and a way to end it early. */
export interface PostgresRunCoordinator extends RunCoordinator {
  /** The fencing token of the run this instance is executing for `job`, if any. */
  tokenFor(job: string): number | undefined;
  /** Ends this instance's run of `job` (what `onComplete` does), freeing its lease at once. */
  finish(job: string): Promise<void>;
}

/**
 * A node-cron `RunCoordinator` backed by a PostgreSQL lease table: each scheduled run
 * executes on exactly one instance of the cluster (see sql/runs.ts). Pass it as
 * `runCoordinator` with `distributed: true` on a node-cron task of your own, or let
 * `createScheduler` use it.
 */
export function createRunCoordinator(knex: Knex, leasesTable: string, owner: string): PostgresRunCoordinator {
  const tokens = new Map<string, number>();
  const finish = async (job: string) => {
    const token = tokens.get(job);
    if (token === undefined) return;
    tokens.delete(job);
    await run(knex, finishRun(leasesTable, job, owner, token));
  };
  return {
    async shouldRun(key, ttlMs) {
      const match = KEY.exec(key);
      if (!match)
        throw new Error(`run coordinator: cannot read job and slot from node-cron key '${key}' (name the task)`);
      const [, job, slot] = match as unknown as [string, string, string];
      const [won] = await run<{ token: string }>(knex, claimRun(leasesTable, job, owner, new Date(slot), ttlMs));
      if (!won) return false;
      tokens.set(job, Number(won.token));
      return true;
    },
    async onComplete(key) {
      const job = KEY.exec(key)?.[1];
      if (job !== undefined) await finish(job);
    },
    tokenFor: (job) => tokens.get(job),
    finish,
  };
}
