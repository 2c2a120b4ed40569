import type { JsonValue, Message } from './message.js';

/**
 * A message whose `payload` is parsed from `json` the first time it is read (and cached;
 * assigning replaces it). Enqueue returns the normalised copy a consumer will see
 * (`JSON.parse` of what was stored), and `relay:published` carries the published
 * messages; most callers never read those payloads, so parsing every one up front cost
 * them CPU on their hot path for nothing. The property is enumerable: spreading,
 * `JSON.stringify` and deep equality see it like a plain one.
 */
export function withLazyPayload(message: Omit<Message, 'payload'>, json: string): Message {
  let parsed: { value: JsonValue } | undefined;
  return Object.defineProperty(message as Message, 'payload', {
    enumerable: true,
    configurable: true,
    get() {
      parsed ??= { value: JSON.parse(json) as JsonValue };
      return parsed.value;
    },
    set(value: JsonValue) {
      parsed = { value };
    },
  });
}
