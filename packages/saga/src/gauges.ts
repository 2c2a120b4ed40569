import { asError, InvalidOptionError, type Logger, observeGauges } from '@eventual/core';
import { type GaugeOptions, gaugeInterval } from '@eventual/outbox';
import type { Knex } from 'knex';
import type { SagaOrchestrator } from './orchestrator.js';
import { selectSagaGauges } from './sql/sagas.js';
import { runSagaStatement as run } from './sql/statement.js';

/** What the gauges read an orchestrator's sagas with; module-private, so the orchestrator keeps to its user verbs. */
interface GaugeSource {
  knex: Knex;
  sagasTable: string;
  logger: Logger;
}

const sources = new WeakMap<object, GaugeSource>();

/** Called by `createSagaOrchestrator`: where its gauges read. */
export function registerGaugeSource(orchestrator: SagaOrchestrator, source: GaugeSource): void {
  sources.set(orchestrator, source);
}

const GAUGES = {
  sagas: {
    name: 'eventual.sagas',
    unit: '{saga}',
    description: 'Sagas not yet settled, per type and status (running, compensating, failed).',
  },
  oldest: {
    name: 'eventual.saga.oldest.age',
    unit: 's',
    description: 'Age of the oldest saga per type and unsettled status: a stuck saga shows here.',
  },
} as const;

/**
 * Registers the saga gauges with the registered OpenTelemetry meter provider:
 * `eventual.sagas` (how many) and `eventual.saga.oldest.age` (seconds since the oldest
 * started), per `eventual.saga.type` and `eventual.saga.status` for the unsettled
 * statuses (running, compensating, failed), from one query of the saga table at most
 * once per `intervalMs`. Returns the function that unregisters them; `createService`
 * registers them at start and removes them at stop.
 */
export function observeSagaGauges(orchestrator: SagaOrchestrator, options: GaugeOptions = {}): () => void {
  const source = typeof orchestrator === 'object' && orchestrator !== null ? sources.get(orchestrator) : undefined;
  if (!source)
    throw new InvalidOptionError(
      'observeSagaGauges(orchestrator) needs an orchestrator created with createSagaOrchestrator()',
    );
  const intervalMs = gaugeInterval('observeSagaGauges intervalMs', options.intervalMs);
  return observeGauges(
    '@eventual/saga',
    GAUGES,
    async () => {
      const rows = await run<{ type: string; status: string; count: number; oldest_s: number }>(
        source.knex,
        selectSagaGauges(source.sagasTable),
      );
      return rows.flatMap((row) => {
        const attributes = { 'eventual.saga.type': row.type, 'eventual.saga.status': row.status };
        return [
          { gauge: 'sagas' as const, value: row.count, attributes },
          { gauge: 'oldest' as const, value: row.oldest_s, attributes },
        ];
      });
    },
    {
      intervalMs,
      onError: (error) =>
        source.logger({
          level: 'warn',
          namespace: 'saga',
          message: `saga gauges: reading ${source.sagasTable} failed, nothing reported this time`,
          error: asError(error),
        }),
    },
  );
}
