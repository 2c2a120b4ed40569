import { createService } from '@eventual/service';
import { type Env, integerVar, type MessagingConfig, messagingConfig } from '../shared/config.js';
import { connect, ensureDatabase } from '../shared/database.js';
import { demoSeed } from '../shared/demo-data.js';
import { close, jsonServer, listen } from '../shared/http.js';
import { ensureTopics } from '../shared/kafka.js';
import { logger } from '../shared/log.js';
import { consumerSettings, logServiceEvents, serviceSettings } from '../shared/messaging.js';
import type { RunningService } from '../shared/process.js';
import { seededRandom } from '../shared/random.js';
import { allTopics, topicsFor } from '../shared/topics.js';
import { orderRoutes } from './api.js';
import { DEFAULT_TIMING, orderFulfilment, type SagaTiming } from './saga.js';
import { migrateOrderDatabase, seedCatalog } from './schema.js';

export interface OrderConfig extends MessagingConfig {
  port: number;
  timing: SagaTiming;
}

export function orderConfig(env: Env): OrderConfig {
  return {
    ...messagingConfig(env),
    port: integerVar(env, 'PORT', 3000, 0, 65_535),
    timing: {
      stepDeadlineMs: integerVar(env, 'STEP_DEADLINE_MS', DEFAULT_TIMING.stepDeadlineMs, 100),
      shipDeadlineMs: integerVar(env, 'SHIP_DEADLINE_MS', DEFAULT_TIMING.shipDeadlineMs, 100),
    },
  };
}

/**
 * The order service: the HTTP API, and the saga orchestrator. Its consumer reads the
 * participants' replies; its scheduler sweeps saga deadlines once per cluster.
 */
export async function startOrderService(config: OrderConfig): Promise<RunningService> {
  const log = logger('order');
  const topics = topicsFor(config.namespace);
  await ensureDatabase(config.databaseUrl);
  await ensureTopics(config.brokers, allTopics(topics));
  // HTTP requests each hold a connection for their transaction, on top of the consumer's.
  const knex = connect(config.databaseUrl, 24);
  await migrateOrderDatabase(knex);
  if (config.seedDemoData) await seedCatalog(knex, demoSeed(seededRandom(1)).products);

  const saga = orderFulfilment(topics, config.timing);
  const service = createService({
    ...serviceSettings('order', config, log),
    knex,
    // The saga comes with its reply consumer and its deadline sweep.
    sagas: {
      definitions: [saga],
      replyTopic: topics.orderReplies,
      maxCompensationAttempts: 20,
      retryBackoff: { initialMs: 500, maxMs: 5_000 },
      consumer: consumerSettings('order', config),
    },
  });
  const { orchestrator } = service;
  orchestrator.on('saga:failed', (e) => log(`saga ${e.sagaId} FAILED at ${e.step}: ${e.error} (resume it once fixed)`));
  logServiceEvents(service, log);
  await service.start();

  const server = jsonServer(orderRoutes({ knex, orchestrator, saga }), log);
  const port = await listen(server, config.port);
  return {
    info: { port },
    async stop() {
      await close(server);
      await service.stop();
      await knex.destroy();
    },
  };
}
