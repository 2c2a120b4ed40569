import type { JsonValue } from '@eventual/outbox';

// Command payloads. Types (not interfaces) so they are JSON values for the outbox.
// Each has a parse function the consumers register with `consumer.handle(type, h,
// { parse })`: a malformed command is dead-lettered before anything is written.

/** ChargePayment and RefundPayment. Amounts are integer cents. */
export type PaymentCommand = { orderId: string; customerId: string; amount: number };

/** ReserveStock and ReleaseStock. */
export type StockCommand = { orderId: string; sku: string; quantity: number };

/** ShipOrder and CancelShipment. */
export type ShipmentCommand = { orderId: string; customerId: string; sku: string; quantity: number };

type Shape = Record<string, 'text' | 'count'>;

function parseShape<T>(what: string, payload: JsonValue, shape: Shape): T {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload))
    throw new Error(`${what} must be a JSON object`);
  for (const [name, kind] of Object.entries(shape)) {
    const value = payload[name];
    const ok =
      kind === 'text'
        ? typeof value === 'string' && value.length > 0 && value.length <= 200
        : typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
    if (!ok)
      throw new Error(
        `${what}.${name} must be ${kind === 'text' ? 'a non-empty string' : 'a positive integer'}, got ${JSON.stringify(value)}`,
      );
  }
  return payload as T;
}

export const parsePaymentCommand = (payload: JsonValue) =>
  parseShape<PaymentCommand>('payment command', payload, { orderId: 'text', customerId: 'text', amount: 'count' });

export const parseStockCommand = (payload: JsonValue) =>
  parseShape<StockCommand>('stock command', payload, { orderId: 'text', sku: 'text', quantity: 'count' });

export const parseShipmentCommand = (payload: JsonValue) =>
  parseShape<ShipmentCommand>('shipment command', payload, {
    orderId: 'text',
    customerId: 'text',
    sku: 'text',
    quantity: 'count',
  });

/** The `reason` of a failure reply (CommandRejected puts it there). */
export function reasonOf(reply: JsonValue): string {
  if (reply && typeof reply === 'object' && !Array.isArray(reply) && typeof reply.reason === 'string')
    return reply.reason;
  return JSON.stringify(reply);
}
