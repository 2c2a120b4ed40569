/** The topics the services talk through. Commands are keyed by saga id (= order id). */
export interface Topics {
  /** Replies of payment and warehouse to the order service's saga orchestrator. */
  orderReplies: string;
  /** ChargePayment, RefundPayment. */
  paymentCommands: string;
  /** ReserveStock, ReleaseStock, ShipOrder, CancelShipment. */
  warehouseCommands: string;
}

export function topicsFor(namespace: string): Topics {
  const p = namespace === '' ? '' : `${namespace}.`;
  return {
    orderReplies: `${p}order.saga-replies`,
    paymentCommands: `${p}payment.commands`,
    warehouseCommands: `${p}warehouse.commands`,
  };
}

/** Every topic, with the dead-letter topic of each (created up front: brokers may not auto-create). */
export function allTopics(topics: Topics): string[] {
  const main = [topics.orderReplies, topics.paymentCommands, topics.warehouseCommands];
  return [...main, ...main.map((t) => `${t}.dlq`)];
}

/** Consumer group of a service: the namespace keeps demo runs on a shared broker apart. */
export function groupFor(namespace: string, service: string): string {
  return namespace === '' ? service : `${namespace}.${service}`;
}

export const MESSAGE = {
  chargePayment: 'ChargePayment',
  refundPayment: 'RefundPayment',
  reserveStock: 'ReserveStock',
  releaseStock: 'ReleaseStock',
  shipOrder: 'ShipOrder',
  cancelShipment: 'CancelShipment',
} as const;

/** Partitions per topic: enough for each consumer to work on several sagas at once. */
export const PARTITIONS = 4;
