// The part of a lock child process every backend shares; a backend's fixture script
// makes the manager and calls runWorker. Commands (after the backend's own arguments):
//   count <lock> <counterTable> <increments> <ttlMs>
//       reports 'ready', waits for the parent's 'go', then increments the counter
//       under the lock <increments> times, one acquire each; reports 'done' with the
//       tokens and how many writes the storage refused.
//   hold <lock> <counterTable> <ttlMs>
//       acquires, reports 'acquired' with its token, and on the parent's 'write'
//       tries a guarded write and a write carrying its token; reports 'wrote'.
//       Reports 'lost' when its signal fires.
import knexFactory, { type Knex } from 'knex';
import type { LockHandle, LockManager } from '../../src/index.js';
import { FencedCounter } from './counter.js';

type Guard<H> = ((handle: H, trx: Knex.Transaction) => Promise<void>) | undefined;

const send = (message: Record<string, unknown>) => process.send?.(message);
const nextMessage = (event: string) =>
  new Promise<void>((resolve) => {
    const onMessage = (m: unknown) => {
      if ((m as { event?: string }).event !== event) return;
      process.off('message', onMessage);
      resolve();
    };
    process.on('message', onMessage);
  });

export async function runWorker<H extends LockHandle>(
  manager: LockManager<H>,
  storageUrl: string,
  guard: Guard<H>,
  argv: string[],
): Promise<void> {
  const [command, lock, table, ...rest] = argv as [string, string, string, ...string[]];
  const knex = knexFactory({ client: 'pg', connection: storageUrl, pool: { min: 0, max: 2 } });
  const counter = new FencedCounter(knex, table);
  await manager.start();
  if (command === 'count') {
    const [increments, ttlMs] = rest.map(Number) as [number, number];
    const go = nextMessage('go');
    send({ event: 'ready' });
    await go;
    const tokens: string[] = [];
    let refused = 0;
    for (let i = 0; i < increments; i++) {
      const handle = await manager.acquire(lock, { ttlMs });
      tokens.push(handle.token.toString());
      const accepted = await counter.increment(handle.token, guard && ((trx) => guard(handle, trx)));
      if (!accepted) refused += 1;
      await handle.release();
    }
    send({ event: 'done', tokens, refused });
  } else if (command === 'hold') {
    const [ttlMs] = rest.map(Number) as [number];
    const handle = await manager.acquire(lock, { ttlMs });
    handle.signal.addEventListener('abort', () => send({ event: 'lost', at: Date.now() }));
    const write = nextMessage('write');
    send({ event: 'acquired', token: handle.token.toString() });
    await write;
    const signalAborted = handle.signal.aborted;
    let guarded = 'none';
    if (guard) {
      guarded = await counter
        .write(-1, handle.token, (trx) => guard(handle, trx))
        .then(
          (ok) => (ok ? 'written' : 'refused by the storage'),
          (error: { code?: string }) => `refused: ${error.code}`,
        );
    }
    const fenced = await counter.write(-2, handle.token);
    send({ event: 'wrote', signalAborted, guarded, fenced });
  }
  await manager.stop();
  await knex.destroy();
}
