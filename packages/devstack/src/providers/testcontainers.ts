import { appendFileSync } from 'node:fs';

export interface ContainerServices {
  adminUrl: string;
  brokers: string[];
  kafkaVersion: string;
  stop(): Promise<void>;
}

/**
 * postgres:17 and apache/kafka:3.9.1 through GenericContainer (the testcontainers
 * Kafka module only supports Confluent images). Imported lazily so machines without
 * Docker never load testcontainers at all.
 */
export async function startContainers(logFile: string): Promise<ContainerServices> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const postgres = await new GenericContainer('postgres:17')
    .withEnvironment({ POSTGRES_PASSWORD: 'eventual' })
    .withCommand(['postgres', '-c', 'max_connections=400', '-c', 'fsync=off'])
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  // Kafka must advertise the host port the test process connects to, which is only
  // known after the container starts; a fixed host port avoids that dance.
  const { freePort } = await import('../ports.js');
  const hostPort = await freePort();
  const kafka = await new GenericContainer('apache/kafka:3.9.1')
    .withExposedPorts({ container: 9092, host: hostPort })
    .withEnvironment({
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_LISTENERS: 'PLAINTEXT://:9092,CONTROLLER://:9093',
      KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${hostPort}`,
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .start();
  const logs = await kafka.logs();
  let kafkaVersion = 'unknown';
  logs.on('data', (line: Buffer | string) => {
    const text = String(line);
    appendFileSync(logFile, text);
    kafkaVersion = text.match(/Kafka version: (\S+)/)?.[1] ?? kafkaVersion;
  });
  return {
    adminUrl: `postgres://postgres:eventual@${postgres.getHost()}:${postgres.getMappedPort(5432)}/postgres`,
    brokers: [`127.0.0.1:${hostPort}`],
    get kafkaVersion() {
      return kafkaVersion;
    },
    async stop() {
      await Promise.allSettled([kafka.stop(), postgres.stop()]);
    },
  };
}
