import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * The example fenced storage: a counter that refuses a write carrying a token not
 * greater than the last one it accepted (what storage must do with a fencing token),
 * and keeps a log of the writes it accepted. `increment` is a deliberately unsafe
 * read-modify-write (read, pause, write): without the lock, concurrent increments lose
 * updates.
 */
export class FencedCounter {
  readonly table: string;
  readonly #knex: Knex;

  constructor(knex: Knex, table = `counter_${randomBytes(4).toString('hex')}`) {
    this.#knex = knex;
    this.table = table;
  }

  async create(): Promise<void> {
    await this.#knex.raw(
      `create table "${this.table}" (id int primary key, value int not null, token bigint not null)`,
    );
    await this.#knex.raw(`insert into "${this.table}" values (1, 0, 0)`);
    await this.#knex.raw(
      `create table "${this.table}_log" (seq bigserial primary key, value int not null, token bigint not null)`,
    );
  }

  /**
   * value + 1 written under `token`; false when the storage refused it (an older token).
   * `guard` runs first in the write's transaction (a backend's own fence).
   */
  async increment(token: bigint, guard?: (trx: Knex.Transaction) => Promise<void>): Promise<boolean> {
    const [{ value }] = (await this.#knex.raw(`select value from "${this.table}" where id = 1`)).rows;
    await this.#knex.raw('select pg_sleep(0.003)');
    return this.write(value + 1, token, guard);
  }

  /** Writes `value` under `token`: refused (false) unless `token` is newer than the last accepted one. */
  async write(value: number, token: bigint, guard?: (trx: Knex.Transaction) => Promise<void>): Promise<boolean> {
    return this.#knex.transaction(async (trx) => {
      await guard?.(trx);
      const { rowCount } = await trx.raw(
        `update "${this.table}" set value = ?, token = ?::bigint where id = 1 and token < ?::bigint`,
        [value, token.toString(), token.toString()],
      );
      if (rowCount === 0) return false;
      await trx.raw(`insert into "${this.table}_log" (value, token) values (?, ?::bigint)`, [value, token.toString()]);
      return true;
    });
  }

  async value(): Promise<number> {
    return (await this.#knex.raw(`select value from "${this.table}" where id = 1`)).rows[0].value;
  }

  /** The accepted writes in commit order (seq). */
  async log(): Promise<Array<{ value: number; token: bigint }>> {
    const { rows } = await this.#knex.raw(`select value, token from "${this.table}_log" order by seq`);
    return rows.map((r: { value: number; token: string }) => ({ value: r.value, token: BigInt(r.token) }));
  }
}
