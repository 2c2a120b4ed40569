import { type Env, integerVar, required } from '../shared/config.js';
import { connect, ensureDatabase } from '../shared/database.js';
import { close, jsonServer, listen } from '../shared/http.js';
import { logger } from '../shared/log.js';
import type { RunningService } from '../shared/process.js';
import { seededRandom } from '../shared/random.js';
import { carrierRoutes } from './api.js';
import { type CarrierFaults, NO_FAULTS, resolveFaults } from './faults.js';
import { migrateCarrierDatabase } from './schema.js';

export interface CarrierConfig {
  databaseUrl: string;
  port: number;
  faults: CarrierFaults;
  seed: number;
}

export function carrierConfig(env: Env): CarrierConfig {
  let faults = NO_FAULTS;
  if (env.CARRIER_FAULTS) {
    try {
      faults = resolveFaults(JSON.parse(env.CARRIER_FAULTS), NO_FAULTS);
    } catch (error) {
      throw new Error(`CARRIER_FAULTS: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return {
    databaseUrl: required(env, 'DATABASE_URL'),
    port: integerVar(env, 'PORT', 4000, 0, 65_535),
    faults,
    seed: integerVar(env, 'CARRIER_SEED', 42, 0, 2 ** 32 - 1),
  };
}

/** The simulated carrier: an external HTTP service with its own database. Not part of eventual. */
export async function startCarrierService(config: CarrierConfig): Promise<RunningService> {
  const log = logger('carrier');
  await ensureDatabase(config.databaseUrl);
  const knex = connect(config.databaseUrl, 10);
  await migrateCarrierDatabase(knex);
  const faults = { current: config.faults };
  const server = jsonServer(carrierRoutes({ knex, random: seededRandom(config.seed), faults }), log);
  const port = await listen(server, config.port);
  return {
    info: { port, faults: JSON.stringify(config.faults) },
    async stop() {
      // Requests held on purpose (timeouts) would delay the stop: drop them.
      server.closeAllConnections();
      await close(server, 0);
      await knex.destroy();
    },
  };
}
