/** A record as the relay hands it to a publisher. */
export interface OutboundRecord {
  /** The message id, also in the `message-id` header. */
  id: string;
  /** The topic to publish to. */
  topic: string;
  /** The record key: records of one key must reach the broker in the order given. */
  key: string;
  /** The JSON payload text, published as the record value byte for byte. */
  value: string;
  /** The record headers, the standard ones included. */
  headers: Record<string, string>;
}

/**
 * The relay's port to a broker: two methods, so another client than kafkajs can be
 * plugged in. `publish` resolves only once the broker acknowledged every record (in
 * order per key) and otherwise throws a `PublishError` whose `kind` says whether the
 * broker was unavailable, the publication may succeed later, or never can.
 */
export interface Publisher {
  /** Publishes `records` and resolves once the broker acknowledged all of them; else throws a `PublishError`. */
  publish(records: OutboundRecord[]): Promise<void>;
  /** Releases the connection; the relay calls it once, at the end of its `stop()`. */
  close(): Promise<void>;
  /**
   * Checks that the broker can be reached (and authenticated with) within `timeoutMs`;
   * otherwise throws a `BrokerUnreachableError` naming the brokers and the reason, and
   * holds nothing open. The relay calls it at start. Optional: a publisher without it
   * is taken as reachable (a wrapper around another publisher should pass it on).
   */
  verify?(timeoutMs: number): Promise<void>;
}
