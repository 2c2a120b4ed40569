import { waitUntil } from '@eventual/devstack';
import type { Publisher } from '@eventual/outbox';
import { describe, expect, it } from 'vitest';
import { outboxFixture } from './support.js';

const fixture = outboxFixture('scale_out');
const SHARDS = 32;
/** The default TTL: a keeper round is 5 s, so anything that waited for one shows. */
const TTL_MS = 15_000;
/** Well under a keeper round; the relays must get there by acting at once. */
const BOUND_MS = 2_500;

/** No messages are enqueued in these tests: only the leases are exercised. */
const idlePublisher = (): Publisher => ({ publish: async () => {}, close: async () => {} });

describe('relays starting at the same moment', () => {
  for (const instances of [2, 3]) {
    it(`${instances} relays started together own every shard within a short bound, and split them fairly, every time`, async () => {
      const { outbox } = await fixture.database(SHARDS);
      const floor = Math.floor(SHARDS / instances);
      const ceiling = Math.ceil(SHARDS / instances);
      for (let round = 0; round < 8; round++) {
        const relays = Array.from({ length: instances }, (_, i) =>
          fixture.relay(outbox, { publisher: idlePublisher(), instanceId: `r${round}-${i}`, leaseTtlMs: TTL_MS }),
        );
        const started = Date.now();
        await Promise.all(relays.map((relay) => relay.start()));
        const owned = () => relays.map((relay) => relay.ownedShards());
        const allOwnedAfter = await waitUntil(
          `round ${round}: every shard owned`,
          async () => (new Set(owned().flat()).size === SHARDS ? Date.now() - started : undefined),
          { timeoutMs: TTL_MS, intervalMs: 20 },
        );
        const fairAfter = await waitUntil(
          `round ${round}: a fair split (${floor}-${ceiling} each)`,
          async () =>
            owned().every((shards) => shards.length >= floor && shards.length <= ceiling)
              ? Date.now() - started
              : undefined,
          { timeoutMs: TTL_MS, intervalMs: 20 },
        );
        const split = owned();
        expect(split.flat().length, `round ${round}: no shard has two owners`).toBe(SHARDS);
        expect(new Set(split.flat()).size).toBe(SHARDS);
        expect(allOwnedAfter, `round ${round}: every shard owned after ${allOwnedAfter} ms`).toBeLessThan(BOUND_MS);
        expect(fairAfter, `round ${round}: fair split after ${fairAfter} ms`).toBeLessThan(BOUND_MS);
        await Promise.all(relays.map((relay) => relay.stop()));
      }
    });
  }

  it('a relay joining a running one gets its fair share well within a keeper round', async () => {
    const { outbox } = await fixture.database(SHARDS);
    const first = fixture.relay(outbox, { publisher: idlePublisher(), instanceId: 'first', leaseTtlMs: TTL_MS });
    await first.start();
    expect(first.ownedShards()).toHaveLength(SHARDS);
    const second = fixture.relay(outbox, { publisher: idlePublisher(), instanceId: 'second', leaseTtlMs: TTL_MS });
    const joined = Date.now();
    await second.start();
    const fairAfter = await waitUntil(
      'a fair split',
      async () =>
        first.ownedShards().length === SHARDS / 2 && second.ownedShards().length === SHARDS / 2
          ? Date.now() - joined
          : undefined,
      { timeoutMs: 3 * TTL_MS, intervalMs: 20 },
    );
    expect(new Set([...first.ownedShards(), ...second.ownedShards()]).size).toBe(SHARDS);
    expect(fairAfter).toBeLessThan(BOUND_MS);
    // And when one leaves, the other takes its shards at once, not at its next round.
    const left = Date.now();
    await second.stop();
    const takenAfter = await waitUntil(
      'the first to hold every shard again',
      async () => (first.ownedShards().length === SHARDS ? Date.now() - left : undefined),
      { timeoutMs: 3 * TTL_MS, intervalMs: 20 },
    );
    expect(takenAfter).toBeLessThan(BOUND_MS);
  });
});
