import { BrokerUnreachableError, EventualError, type EventualErrorCode } from '@eventual/service';
import { describe, expect, it } from 'vitest';

/**
 * `EventualError.code` is a union of literals gathered from every package (declaration
 * merging into core's `EventualErrorCodes`): a switch over it is checked by the compiler.
 * `pnpm build` type-checks this file, so the `@ts-expect-error` lines fail the build if
 * the code ever widens back to `string`, and `exhaustive` fails it if a package adds a
 * code that the list below does not name.
 */
const every = {
  invalid_option: 'core',
  database_error: 'core',
  database_unavailable: 'core',
  schema_not_ready: 'core',
  lifecycle: 'core',
  broker_unreachable: 'core',
  topic_not_found: 'core',
  topic_mismatch: 'core',
  invalid_message: 'outbox',
  message_too_large: 'outbox',
  reserved_header: 'outbox',
  transaction_required: 'outbox',
  foreign_transaction: 'outbox',
  prepared_message_resolved: 'outbox',
  unknown_message: 'outbox',
  illegal_transition: 'outbox',
  publish_unavailable: 'outbox',
  publish_retriable: 'outbox',
  publish_permanent: 'outbox',
  topic_create_failed: 'outbox',
  non_retriable: 'consumer',
  illegal_inbox_transition: 'consumer',
  transaction_aborted: 'consumer',
  transaction_owned_by_consumer: 'consumer',
  saga_concurrent_update: 'saga',
  invalid_saga_data: 'saga',
  saga_state: 'saga',
  invalid_saga_reply: 'saga',
  malformed_saga_message: 'saga',
  command_rejected: 'saga',
} as const satisfies Record<EventualErrorCode, string>;

function exhaustive(code: EventualErrorCode): string {
  switch (code) {
    case 'broker_unreachable':
    case 'topic_not_found':
      return 'broker';
    default:
      return every[code];
  }
}

describe('EventualError.code', () => {
  it('is a union of every package’s literal codes', () => {
    const codes = Object.keys(every) as EventualErrorCode[];
    expect(new Set(codes.map(exhaustive))).toEqual(new Set(['broker', 'core', 'outbox', 'consumer', 'saga']));
    // @ts-expect-error: not a code of any package
    const unknown: EventualErrorCode = 'no_such_code';
    expect(unknown).toBe('no_such_code');
    // @ts-expect-error: the constructor takes only registered codes
    expect(new EventualError('no_such_code', 'x').code).toBe('no_such_code');
  });

  it('narrows by code on a caught error', () => {
    const error: unknown = new BrokerUnreachableError('relay', 'refused', ['localhost:1'], 100, 'ECONNREFUSED');
    expect(error instanceof EventualError && error.code === 'broker_unreachable' && error.retriable).toBe(true);
  });
});
