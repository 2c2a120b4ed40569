import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { kafkaClusterId } from '../src/providers/local-kafka.js';

describe('the local Kafka cluster id', () => {
  it('never starts with "-", which the storage tool would read as an option', () => {
    // Draw raw ids until one would have started with '-' (about one in 64), and check
    // that kafkaClusterId draws again instead of using it.
    const draws: Buffer[] = [];
    let bad: Buffer | undefined;
    while (!bad) {
      const bytes = randomBytes(16);
      draws.push(bytes);
      if (bytes.toString('base64url').startsWith('-')) bad = bytes;
    }
    expect(draws.length).toBeGreaterThan(0);
    const good = randomBytes(16);
    good[0] = 0x00; // base64url 'A...'
    const offered = [bad, bad, good];
    const id = kafkaClusterId(() => offered.shift()!);
    expect(id).toBe(good.toString('base64url'));
    expect(offered).toHaveLength(0);
  });

  it('is 22 characters of URL-safe base64, like `kafka-storage random-uuid`', () => {
    for (let i = 0; i < 2_000; i++) {
      const id = kafkaClusterId();
      expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
    }
  });
});
