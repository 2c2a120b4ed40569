import { asError, backoffDelay } from '@eventual/core';
import type { CheckAnswer, OutboxContext } from './context.js';
import { type MessageRow, rowToMessage } from './message.js';
import { recordCheck, resolvePrepared, selectDueForCheck } from './sql/prepared.js';
import { run } from './sql/statement.js';

interface DueRow extends MessageRow {
  check_count: number;
}

/**
 * One pass of the check-back: asks the producer's checker about every prepared
 * message that is due and applies its answer. `unknown` (or a checker that throws or
 * is missing) schedules another check with backoff; after `maxChecks` the configured
 * default resolution is applied and `checkback:exhausted` fires. Each resolution is
 * guarded by the state and check count it was based on, so a producer's own
 * commit/rollback arriving meanwhile wins and is never overwritten.
 * Returns how many messages were checked.
 */
export async function runCheckBack(context: OutboxContext, instanceId: string): Promise<number> {
  const { o, events, counters } = context;
  const { backoff, maxChecks, defaultResolution, batchSize } = o.checkBack;
  const due = await run<DueRow>(o.knex, selectDueForCheck(o, batchSize));
  for (const row of due) {
    const message = rowToMessage(row);
    const checks = row.check_count + 1;
    let answer: CheckAnswer;
    let note = '';
    const checker = context.checkerFor(message);
    if (!checker) {
      answer = 'unknown';
      note = `no checker registered for topic '${row.topic}' / type '${row.type}'`;
    } else {
      try {
        answer = await checker(message);
        if (answer !== 'commit' && answer !== 'rollback' && answer !== 'unknown') {
          note = `checker answered ${JSON.stringify(answer)}; expected 'commit', 'rollback' or 'unknown'`;
          events.emit('checkback:error', { instanceId, messageId: row.id, error: new Error(note) });
          answer = 'unknown';
        }
      } catch (error) {
        answer = 'unknown';
        note = `checker threw: ${asError(error).message}`;
        events.emit('checkback:error', { instanceId, messageId: row.id, error: asError(error) });
        context.logger({
          level: 'warn',
          namespace: 'checkback',
          message: `the checker for prepared message ${row.id} (${row.topic} / ${row.type}) threw; counted as unknown`,
          error: asError(error),
          instanceId,
        });
      }
    }
    counters.checked += 1;
    events.emit('checkback:checked', { instanceId, messageId: row.id, answer, checks });
    if (answer !== 'unknown') {
      const resolved = await run(o.knex, resolvePrepared(o, row.id, answer, 'checkback', row.check_count));
      if (resolved.length > 0)
        events.emit('checkback:resolved', { instanceId, messageId: row.id, resolution: answer, by: 'checkback' });
      continue;
    }
    if (checks >= maxChecks) {
      const resolved = await run(o.knex, resolvePrepared(o, row.id, defaultResolution, 'default', row.check_count));
      if (resolved.length > 0) {
        events.emit('checkback:exhausted', { instanceId, messageId: row.id, checks, resolution: defaultResolution });
        events.emit('checkback:resolved', {
          instanceId,
          messageId: row.id,
          resolution: defaultResolution,
          by: 'default',
        });
      }
      continue;
    }
    await run(
      o.knex,
      recordCheck(o, row.id, row.check_count, backoffDelay(checks, backoff), note || 'checker answered unknown'),
    );
  }
  return due.length;
}
