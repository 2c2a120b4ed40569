/** Raised when no provider can supply PostgreSQL or Kafka; says what to change. */
export class DevstackUnavailableError extends Error {
  override readonly name = 'DevstackUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
