// The consumer package's per-file fixture (fresh databases with an outbox, consumers
// with fast retries and group joins, relays, a raw producer, cleanup after the file):
// saga tests need exactly that, so they share it rather than keep a copy.
export { consumerFixture as serviceFixture, uniqueName } from '../../consumer/test/support.js';
