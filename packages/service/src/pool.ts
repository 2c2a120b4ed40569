import { InvalidOptionError } from '@eventual/core';
import type { Knex } from 'knex';

/** What holds a database connection at once, by part, for the error message. */
export interface ConnectionNeed {
  part: string;
  connections: number;
}

/**
 * The connections a service holds at the same time in steady state: each relay lane
 * one for its claim or mark, the LISTEN connection, the scheduler one for a job, each
 * partition in flight one for its record's transaction. A pool smaller than that
 * starves the service with knex's generic "Timeout acquiring a connection"; the
 * service refuses to start instead, with the number.
 */
export function checkPool(knex: Knex, needs: ConnectionNeed[]): 'checked' | 'unknown' {
  const needed = needs.reduce((sum, n) => sum + n.connections, 0);
  const max = poolMax(knex);
  if (max === undefined) return 'unknown';
  if (max >= needed) return 'checked';
  const detail = needs.map((n) => `${n.part} ${n.connections}`).join(', ');
  throw new InvalidOptionError(
    `the knex pool holds at most ${max} connections, but this service needs ${needed} at once (${detail}); ` +
      `create knex with pool: { max: ${needed} } plus what your own code (HTTP requests, ...) uses`,
  );
}

/** The pool's size; undefined for a pool knex does not own (`connectionPool`), which it cannot read. */
function poolMax(knex: Knex): number | undefined {
  const client = knex.client as {
    pool?: { max?: unknown };
    config?: { pool?: { max?: unknown }; connectionPool?: unknown };
  };
  if (client.config?.connectionPool !== undefined) return undefined;
  const max = client.pool?.max ?? client.config?.pool?.max;
  return typeof max === 'number' ? max : 10; // knex's default
}
