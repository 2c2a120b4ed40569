import { createService, parsed, parsedCommand } from '@eventual/service';
import { type Env, integerVar, type MessagingConfig, messagingConfig, required } from '../shared/config.js';
import { connect, ensureDatabase } from '../shared/database.js';
import { demoSeed } from '../shared/demo-data.js';
import { ensureTopics } from '../shared/kafka.js';
import { logger } from '../shared/log.js';
import { parseShipmentCommand, parseStockCommand } from '../shared/messages.js';
import { consumerSettings, logServiceEvents, serviceSettings } from '../shared/messaging.js';
import type { RunningService } from '../shared/process.js';
import { seededRandom } from '../shared/random.js';
import { allTopics, MESSAGE, topicsFor } from '../shared/topics.js';
import { createCarrierClient } from './carrier-client.js';
import { migrateWarehouseDatabase, seedProducts } from './schema.js';
import { createShipping } from './shipping.js';
import { releaseStock, reserveStock } from './stock.js';

export interface WarehouseConfig extends MessagingConfig {
  carrierUrl: string;
  /** How long to wait for the carrier before leaving the outcome to the check-back. */
  carrierTimeoutMs: number;
  /** When the check-back first asks about a prepared reply: a little after the carrier timeout. */
  checkAfterMs: number;
}

export function warehouseConfig(env: Env): WarehouseConfig {
  const carrierTimeoutMs = integerVar(env, 'CARRIER_TIMEOUT_MS', 1_500, 100);
  return {
    ...messagingConfig(env),
    carrierUrl: required(env, 'CARRIER_URL'),
    carrierTimeoutMs,
    checkAfterMs: integerVar(env, 'CHECK_AFTER_MS', carrierTimeoutMs + 1_500, 0),
  };
}

/** The warehouse: stock (a saga participant) and shipping through the external carrier. */
export async function startWarehouseService(config: WarehouseConfig): Promise<RunningService> {
  const log = logger('warehouse');
  const topics = topicsFor(config.namespace);
  await ensureDatabase(config.databaseUrl);
  await ensureTopics(config.brokers, allTopics(topics));
  const knex = connect(config.databaseUrl, 12);
  await migrateWarehouseDatabase(knex);
  if (config.seedDemoData) await seedProducts(knex, demoSeed(seededRandom(1)).products);

  const settings = serviceSettings('warehouse', config, log);
  const service = createService({
    ...settings,
    knex,
    // Ask the carrier soon after a booking call went unanswered; keep asking (with
    // backoff up to 5 s) for minutes while it is unreachable before the default
    // rollback, after which the saga's deadline re-sends ShipOrder anyway.
    outbox: {
      ...settings.outbox,
      checkBack: { checkAfterMs: config.checkAfterMs, maxChecks: 60, backoff: { initialMs: 1_000, maxMs: 5_000 } },
    },
    consumers: [
      {
        ...consumerSettings('warehouse', config),
        topics: [topics.warehouseCommands],
        commands: {
          [MESSAGE.reserveStock]: parsedCommand(parseStockCommand, reserveStock),
          [MESSAGE.releaseStock]: parsedCommand(parseStockCommand, releaseStock),
        },
        // Shipping replies itself, with a prepared reply around the carrier call.
        handlers: {
          [MESSAGE.shipOrder]: parsed(parseShipmentCommand, (context) => shipping.shipOrder(context)),
          [MESSAGE.cancelShipment]: parsed(parseShipmentCommand, (context) => shipping.cancelShipment(context)),
        },
      },
    ],
  });
  const shipping = createShipping({
    knex,
    outbox: service.outbox,
    carrier: createCarrierClient({ baseUrl: config.carrierUrl, timeoutMs: config.carrierTimeoutMs }),
    replyTopic: topics.orderReplies,
    log,
  });
  shipping.registerChecker();
  logServiceEvents(service, log);
  await service.start();
  return {
    info: { consumes: topics.warehouseCommands, carrier: config.carrierUrl },
    async stop() {
      await service.stop();
      await shipping.drain();
      await knex.destroy();
    },
  };
}
