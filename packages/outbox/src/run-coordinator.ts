import type { RunCoordinator } from 'node-cron';
import type { Outbox } from './outbox.js';
import { claimRun, finishRun } from './sql/runs.js';
import { run } from './sql/statement.js';

/** node-cron keys a run as `<task name>:<scheduled time ISO>`. */
const KEY = /^(.+):(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)$/;

export interface PostgresRunCoordinator extends RunCoordinator {
  /** The fencing token of the run this instance is executing for `job`, if any. */
  tokenFor(job: string): number | undefined;
}

/**
 * A node-cron `RunCoordinator` backed by the outbox's lease table: each scheduled run
 * executes on exactly one instance of the cluster (see sql/runs.ts). Pass it as
 * `runCoordinator` with `distributed: true` on a task, or use `createScheduler`.
 */
export function createRunCoordinator(outbox: Outbox, owner: string): PostgresRunCoordinator {
  const o = outbox.options;
  const tokens = new Map<string, number>();
  return {
    async shouldRun(key, ttlMs) {
      const match = KEY.exec(key);
      if (!match)
        throw new Error(`run coordinator: cannot read job and slot from node-cron key '${key}' (name the task)`);
      const [, job, slot] = match as unknown as [string, string, string];
      const [won] = await run<{ token: string }>(o.knex, claimRun(o, job, owner, new Date(slot), ttlMs));
      if (!won) return false;
      tokens.set(job, Number(won.token));
      return true;
    },
    async onComplete(key) {
      const job = KEY.exec(key)?.[1];
      const token = job === undefined ? undefined : tokens.get(job);
      if (job === undefined || token === undefined) return;
      tokens.delete(job);
      await run(o.knex, finishRun(o, job, owner, token));
    },
    tokenFor: (job) => tokens.get(job),
  };
}
