// Every service is configured from its environment (what docker-compose and the demo
// both set). One reader, with messages that say which variable to fix.

export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function required(env: Env, name: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === '')
    throw new ConfigError(
      `${name} is not set; see examples/order-pay-ship/README.md for the variables each service reads`,
    );
  return value.trim();
}

export function integerVar(env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  return value;
}

export function brokersVar(env: Env): string[] {
  const brokers = required(env, 'KAFKA_BROKERS')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  if (brokers.length === 0) throw new ConfigError('KAFKA_BROKERS must list at least one host:port');
  return brokers;
}

/**
 * EVENTUAL_NAMESPACE prefixes topic and consumer group names, so that several demo
 * runs (or test files) can share one Kafka broker without reading each other's
 * messages. Empty for a normal deployment.
 */
export function namespaceVar(env: Env): string {
  const value = env.EVENTUAL_NAMESPACE?.trim() ?? '';
  if (value !== '' && !/^[a-z0-9][a-z0-9-]{0,60}$/.test(value))
    throw new ConfigError(`EVENTUAL_NAMESPACE must match /^[a-z0-9][a-z0-9-]{0,60}$/, got ${JSON.stringify(value)}`);
  return value;
}

/** What every Kafka-connected service reads. */
export interface MessagingConfig {
  databaseUrl: string;
  brokers: string[];
  namespace: string;
  /** Seed the demo catalogue, wallets or stock on start (docker-compose sets it; the demo seeds itself). */
  seedDemoData: boolean;
  /**
   * INSTANCE_ID: this process's name in relay and job leases, stable across restarts of
   * the same slot (the demo gives each service one; a StatefulSet gives the pod name),
   * so a restarted service takes its relay shards back at once. Unset: a new random
   * name per process, which is what several replicas of one service need.
   */
  instanceId: string | undefined;
}

export function messagingConfig(env: Env): MessagingConfig {
  return {
    databaseUrl: required(env, 'DATABASE_URL'),
    brokers: brokersVar(env),
    namespace: namespaceVar(env),
    seedDemoData: env.SEED_DEMO_DATA === '1' || env.SEED_DEMO_DATA === 'true',
    instanceId: env.INSTANCE_ID?.trim() || undefined,
  };
}
