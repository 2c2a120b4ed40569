import type { Knex } from 'knex';
import { backoffDelay, OUTAGE_BACKOFF } from './backoff.js';
import { asError } from './errors.js';
import { sleep } from './wait.js';

/** The pg client knex hands out, as far as LISTEN needs it. */
interface ListenConnection {
  query(sql: string): Promise<unknown>;
  on(event: 'notification', listener: (notification: { payload?: string }) => void): void;
  on(event: 'error' | 'end', listener: (error?: Error) => void): void;
  removeListener(event: string, listener: (...args: never[]) => void): void;
}

/** A LISTEN loop started by `startListener`. */
export interface Listener {
  /** Stops listening and hands the connection back. */
  stop(): Promise<void>;
}

/**
 * LISTENs on `channel` on a connection of its own, held from the pool for as long as
 * its owner (a relay, a lock manager) runs, and calls `onNotify` with each payload.
 * NOTIFY is only a latency hint (polling stays the truth), so a lost connection is not
 * an error for the owner: the listener reports it once and reconnects on its own, with
 * jittered backoff so many instances do not stampede a database that just came back.
 * After a reconnect `onNotify(undefined)` says "you may have missed something".
 * `channel` is put between double quotes: build it from names `identifier()` accepted.
 */
export function startListener(
  knex: Knex,
  channel: string,
  onNotify: (payload: string | undefined) => void,
  onError: (error: Error) => void,
): Listener {
  const stopping = new AbortController();

  /** Listens until the listener stops (resolves) or the connection breaks (throws). */
  async function listenOnce(listening: () => void): Promise<void> {
    const conn = (await knex.client.acquireConnection()) as ListenConnection;
    let broken: (error: Error) => void = () => {};
    const lost = new Promise<Error>((resolve) => {
      broken = resolve;
    });
    const onNotification = (n: { payload?: string }) => onNotify(n.payload);
    const onLost = (error?: Error) => broken(error ?? new Error('the LISTEN connection ended'));
    conn.on('notification', onNotification);
    conn.on('error', onLost);
    conn.on('end', onLost);
    let onAbort: () => void = () => {};
    const aborted = new Promise<void>((resolve) => {
      onAbort = resolve;
    });
    stopping.signal.addEventListener('abort', onAbort);
    try {
      if (stopping.signal.aborted) return; // stopped while waiting for the connection
      await conn.query(`listen "${channel}"`);
      listening();
      const outcome = await Promise.race([lost, aborted]);
      if (outcome instanceof Error) throw outcome;
      await conn.query(`unlisten "${channel}"`).catch(() => {});
    } catch (error) {
      // knex must not hand a broken connection to anyone else.
      (conn as { __knex__disposed?: unknown }).__knex__disposed = asError(error).message;
      throw error;
    } finally {
      stopping.signal.removeEventListener('abort', onAbort);
      conn.removeListener('notification', onNotification);
      conn.removeListener('error', onLost);
      conn.removeListener('end', onLost);
      await Promise.resolve(knex.client.releaseConnection(conn)).catch(() => {});
    }
  }

  const loop = (async () => {
    for (let failures = 0; !stopping.signal.aborted; ) {
      try {
        await listenOnce(() => {
          // Back after a failure: what was enqueued meanwhile sent its NOTIFY to nobody.
          if (failures > 0) onNotify(undefined);
          failures = 0;
        });
      } catch (error) {
        failures += 1;
        if (failures === 1) onError(asError(error));
        await sleep(backoffDelay(failures, OUTAGE_BACKOFF), stopping.signal);
      }
    }
  })();

  return {
    async stop() {
      stopping.abort();
      // While the database is down the loop may be waiting for a connection: do not
      // hold the relay's stop for the pool's acquire timeout; it gives up on its own.
      const giveUp = new AbortController();
      await Promise.race([loop, sleep(2_000, giveUp.signal)]);
      giveUp.abort();
    },
  };
}
