import type { Statement } from './statement.js';

/** Where a record came from: stored on its inbox row, for people investigating it. */
export interface InboxKey {
  consumer: string;
  messageId: string;
  topic: string;
  partition: number;
  offset: string;
}

const COLUMNS = `consumer, message_id, topic, partition, "offset"`;
const values = (k: InboxKey) => [k.consumer, k.messageId, k.topic, k.partition, k.offset];
/**
 * Assignments for the SET list of every upsert below: the row keeps the position of
 * the latest delivery, since a redelivery may come from another offset (a republished
 * duplicate).
 */
const SET_LATEST_POSITION = `topic = excluded.topic, partition = excluded.partition, "offset" = excluded."offset"`;

/**
 * The duplicate check, run first inside the handler's transaction: inserts the row as
 * `processed` (it commits if and only if the handler's writes do), or takes over a
 * `retrying` row left by earlier failed attempts. Returns the attempt number, or no
 * row when the message was already processed or dead-lettered: a duplicate.
 *
 * Locking: the insert claims the primary-key entry. A second delivery of the same
 * message running at the same time (a zombie instance after a rebalance, a relay
 * duplicate) blocks on it until this transaction ends; if it committed, the other
 * sees the row and gets nothing back (duplicate), if it rolled back the other
 * proceeds. DO UPDATE locks an existing row even when its WHERE does not match, so a
 * caller that gets no row should end its transaction at once.
 */
export function claimMessage(table: string, key: InboxKey): Statement {
  return {
    name: 'inbox.claimMessage',
    sql: `
      insert into ${table} as i (${COLUMNS}, state, attempts, processed_at)
      values (?, ?, ?, ?, ?, 'processed', 1, now())
      on conflict (consumer, message_id) do update
        set state = 'processed', attempts = i.attempts + 1, error = null, processed_at = now(), ${SET_LATEST_POSITION}
        where i.state = 'retrying'
      returning attempts`,
    bindings: values(key),
  };
}

/**
 * `claimMessage` for a batch of records of one partition, in one statement (batch
 * mode): returns the ids it claimed with their attempt numbers; an id not returned is
 * a duplicate. The ids must be distinct (one row may not be updated twice by one
 * statement); rows are taken in offset order, so two deliveries of the same batch
 * lock them in the same order.
 */
export function claimMessages(
  table: string,
  at: { consumer: string; topic: string; partition: number },
  records: ReadonlyArray<{ messageId: string; offset: string }>,
): Statement {
  return {
    name: 'inbox.claimMessages',
    sql: `
      insert into ${table} as i (${COLUMNS}, state, attempts, processed_at)
      select ?, r.message_id, ?, ?, r."offset", 'processed', 1, now()
        from unnest(?::text[], ?::bigint[]) with ordinality as r(message_id, "offset", n)
       order by r.n
      on conflict (consumer, message_id) do update
        set state = 'processed', attempts = i.attempts + 1, error = null, processed_at = now(), ${SET_LATEST_POSITION}
        where i.state = 'retrying'
      returning message_id, attempts`,
    bindings: [at.consumer, at.topic, at.partition, records.map((r) => r.messageId), records.map((r) => r.offset)],
  };
}

/**
 * After a failed attempt (its transaction rolled back): records the attempt and the
 * error in its own short transaction, so the count survives a restart or a move of
 * the partition to another instance and `maxAttempts` stays a real bound. No row
 * back means another delivery settled the message meanwhile.
 */
export function recordFailure(table: string, key: InboxKey, attempts: number, error: string): Statement {
  return {
    name: 'inbox.recordFailure',
    sql: `
      insert into ${table} as i (${COLUMNS}, state, attempts, error)
      values (?, ?, ?, ?, ?, 'retrying', ?, ?)
      on conflict (consumer, message_id) do update
        set attempts = greatest(i.attempts, excluded.attempts), error = excluded.error, ${SET_LATEST_POSITION}
        where i.state = 'retrying'
      returning attempts`,
    bindings: [...values(key), attempts, error],
  };
}

/**
 * Marks the message dead inside the dead-letter transaction, which also enqueues the
 * message to `<topic>.dlq`: both or neither. Same locking as `claimMessage`; no row
 * back means it was settled meanwhile, and nothing must be dead-lettered.
 */
export function settleDead(table: string, key: InboxKey, attempts: number, error: string): Statement {
  return {
    name: 'inbox.settleDead',
    sql: `
      insert into ${table} as i (${COLUMNS}, state, attempts, error, processed_at)
      values (?, ?, ?, ?, ?, 'dead', ?, ?, now())
      on conflict (consumer, message_id) do update
        set state = 'dead', attempts = greatest(i.attempts, excluded.attempts), error = excluded.error,
            processed_at = now(), ${SET_LATEST_POSITION}
        where i.state = 'retrying'
      returning attempts`,
    bindings: [...values(key), attempts, error],
  };
}

/** Fails with "relation does not exist" (translated to SchemaNotReadyError) when not migrated. */
export function probeInbox(table: string): Statement {
  return {
    name: 'inbox.probeInbox',
    sql: `select 1 from ${table} limit 0`,
    bindings: [],
  };
}

/**
 * Cheap check run after the handler returns and before COMMIT. In a transaction that
 * an earlier statement aborted it fails with 25P02, where COMMIT would silently roll
 * back (see TransactionAbortedError).
 */
export const transactionAlive: Statement = { name: 'inbox.transactionAlive', sql: 'select 1', bindings: [] };
