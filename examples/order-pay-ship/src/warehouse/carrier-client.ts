/** The carrier's view of one shipment, keyed by the idempotency key we chose (the saga id). */
export interface CarrierShipment {
  key: string;
  status: 'booked' | 'rejected' | 'cancelled';
  tracking: string | null;
  reason: string | null;
}

export type BookingOutcome = { booked: true; shipment: CarrierShipment } | { booked: false; reason: string };

export interface ShipmentRequest {
  key: string;
  orderId: string;
  customerId: string;
  sku: string;
  quantity: number;
}

/**
 * The carrier's answer could not be read: it timed out, the connection failed, or it
 * answered 5xx. The booking may or may not exist; only asking again can tell.
 */
export class CarrierUnavailableError extends Error {
  override name = 'CarrierUnavailableError';
}

export interface CarrierClient {
  /** POST /shipments: creates the booking for `key`, or returns the one that exists. */
  book(request: ShipmentRequest): Promise<BookingOutcome>;
  /** GET /shipments/:key: what really happened; `undefined` if the key was never booked. */
  find(key: string): Promise<CarrierShipment | undefined>;
  /** DELETE /shipments/:key: cancels; afterwards the key can never be booked again. */
  cancel(key: string): Promise<CarrierShipment>;
}

export function createCarrierClient(options: { baseUrl: string; timeoutMs: number }): CarrierClient {
  const base = options.baseUrl.replace(/\/+$/, '');

  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      const json = await response.json().catch(() => null);
      if (response.status >= 500)
        throw new CarrierUnavailableError(`carrier answered ${response.status} to ${method} ${path}`);
      return { status: response.status, json };
    } catch (error) {
      if (error instanceof CarrierUnavailableError) throw error;
      const why = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      throw new CarrierUnavailableError(`no answer from the carrier to ${method} ${path} (${why})`);
    }
  }

  return {
    async book(request) {
      const { status, json } = await call('POST', '/shipments', request);
      const shipment = json as CarrierShipment;
      if ((status === 200 || status === 201) && shipment.status === 'booked') return { booked: true, shipment };
      // 422: the carrier refuses this shipment; 409: the key was cancelled and cannot be booked again.
      if (status === 422 || status === 409)
        return { booked: false, reason: shipment?.reason ?? `the carrier answered ${status}` };
      throw new CarrierUnavailableError(`unexpected answer ${status} from the carrier: ${JSON.stringify(json)}`);
    },
    async find(key) {
      const { status, json } = await call('GET', `/shipments/${encodeURIComponent(key)}`);
      if (status === 404) return undefined;
      if (status === 200) return json as CarrierShipment;
      throw new CarrierUnavailableError(`unexpected answer ${status} from the carrier: ${JSON.stringify(json)}`);
    },
    async cancel(key) {
      const { status, json } = await call('DELETE', `/shipments/${encodeURIComponent(key)}`);
      if (status === 200) return json as CarrierShipment;
      throw new CarrierUnavailableError(`unexpected answer ${status} from the carrier: ${JSON.stringify(json)}`);
    },
  };
}
