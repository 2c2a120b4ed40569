export type { HandlerSpec, ServiceConsumerOptions, ServiceOptions } from './options.js';
export { createService, type Service } from './service.js';
export { type KafkaTransportOptions, kafkaTransport, type Transport } from './transport.js';
