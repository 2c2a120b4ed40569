import { createService, parsedCommand } from '@eventual/service';
import { type Env, type MessagingConfig, messagingConfig } from '../shared/config.js';
import { connect, ensureDatabase } from '../shared/database.js';
import { demoSeed } from '../shared/demo-data.js';
import { ensureTopics } from '../shared/kafka.js';
import { logger } from '../shared/log.js';
import { parsePaymentCommand } from '../shared/messages.js';
import { consumerSettings, logServiceEvents, serviceSettings } from '../shared/messaging.js';
import type { RunningService } from '../shared/process.js';
import { seededRandom } from '../shared/random.js';
import { allTopics, MESSAGE, topicsFor } from '../shared/topics.js';
import { chargePayment, refundPayment } from './handlers.js';
import { migratePaymentDatabase, seedWallets } from './schema.js';

export const paymentConfig = (env: Env): MessagingConfig => messagingConfig(env);

/** The payment service: wallets and the payments ledger; a saga participant on payment.commands. */
export async function startPaymentService(config: MessagingConfig): Promise<RunningService> {
  const log = logger('payment');
  const topics = topicsFor(config.namespace);
  await ensureDatabase(config.databaseUrl);
  await ensureTopics(config.brokers, allTopics(topics));
  const knex = connect(config.databaseUrl, 12);
  await migratePaymentDatabase(knex);
  if (config.seedDemoData) await seedWallets(knex, demoSeed(seededRandom(1)).customers);

  const service = createService({
    ...serviceSettings('payment', config, log),
    knex,
    consumers: [
      {
        ...consumerSettings('payment', config),
        topics: [topics.paymentCommands],
        commands: {
          [MESSAGE.chargePayment]: parsedCommand(parsePaymentCommand, chargePayment),
          [MESSAGE.refundPayment]: parsedCommand(parsePaymentCommand, refundPayment),
        },
      },
    ],
  });
  logServiceEvents(service, log);
  await service.start();
  return {
    info: { consumes: topics.paymentCommands },
    async stop() {
      await service.stop();
      await knex.destroy();
    },
  };
}
