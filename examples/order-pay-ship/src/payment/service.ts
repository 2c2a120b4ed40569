import { createParticipant } from '@eventual/saga';
import { type Env, type MessagingConfig, messagingConfig } from '../shared/config.js';
import { connect, ensureDatabase } from '../shared/database.js';
import { demoSeed } from '../shared/demo-data.js';
import { ensureTopics } from '../shared/kafka.js';
import { logger } from '../shared/log.js';
import { parsePaymentCommand } from '../shared/messages.js';
import { createMessaging } from '../shared/messaging.js';
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

  const messaging = createMessaging({
    service: 'payment',
    knex,
    brokers: config.brokers,
    namespace: config.namespace,
    consumes: [topics.paymentCommands],
    log,
  });
  const participant = createParticipant({ name: 'payment' });
  await messaging.migrate();
  await participant.migrate(knex);
  const { consumer } = messaging;
  consumer.handle(MESSAGE.chargePayment, participant.handle(chargePayment, { parse: parsePaymentCommand }));
  consumer.handle(MESSAGE.refundPayment, participant.handle(refundPayment, { parse: parsePaymentCommand }));
  await messaging.start();
  return {
    info: { consumes: topics.paymentCommands },
    async stop() {
      await messaging.stop();
      await knex.destroy();
    },
  };
}
